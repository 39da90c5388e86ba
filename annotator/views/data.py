"""Data pages for project admins (and staff): upload a file, preview it and map its columns,
follow the import and read every duplicate or rejected row, download a streamed export.
Labelers get 403, anonymous users the login page."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotator.forms.importing import MappingForm, UploadForm
from annotator.lib.downloads import attachment
from annotator.models import ImportIssue, ImportJob, Project
from annotator.permissions import project_admin_required
from annotator.services.exporting import CONTENT_TYPES, export_rows, parse_when
from annotator.services.importing import (
    FORMATS,
    ImportRejected,
    import_job_cancel,
    import_job_start,
    import_job_upload,
    import_jobs_fail_stale,
    import_rejected_csv,
    upload_preview,
)
from annotator.views.limits import allows_upload

ISSUES_PER_PAGE = 50






@allows_upload
@project_admin_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    """The upload is kept and previewed; the preview page maps its columns and queues it."""
    project = get_object_or_404(Project, pk=project_id)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = import_job_upload(project=project, upload=data["file"], user=request.user,
                                    fmt=data["fmt"] or None, encoding=data["encoding"] or None)
        except ImportRejected as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("import_preview", project_id=project.pk, job_id=job.pk)
    jobs = project.imports.all()[:10]
    return render(request, "annotator/data/import.html", {
        "project": project, "form": form, "jobs": jobs,
        "upload_limit_mb": settings.UPLOAD_MAX_BYTES // 2**20,
    })


def _job(project_id: int, job_id: int) -> ImportJob:
    jobs = ImportJob.objects.filter(pk=job_id, project_id=project_id)
    import_jobs_fail_stale(jobs)  # a killed import says so instead of "running" forever
    return get_object_or_404(jobs.select_related("project"))


@project_admin_required
@require_http_methods(["GET", "POST"])
def import_preview(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """The first rows as the import reads them (?fmt=&encoding= read them otherwise), and the
    column mapping, whose POST queues the import."""
    job = _job(project_id, job_id)
    if job.status != ImportJob.Status.PREVIEW:
        return redirect("import_report", project_id=project_id, job_id=job.pk)
    params = request.POST if request.method == "POST" else request.GET
    fmt = params.get("fmt") or job.options.get("fmt")
    encoding = params.get("encoding") or job.options.get("encoding")
    preview, error = None, ""
    try:
        preview = upload_preview(job=job, fmt=fmt, encoding=encoding)
    except ImportRejected as exc:
        error = str(exc)
    form = MappingForm(request.POST if request.method == "POST" else None,
                       columns=preview.columns if preview else [])
    if preview and request.method == "POST" and form.is_valid():
        import_job_start(job=job, fmt=fmt, encoding=encoding, **form.cleaned_data)
        return redirect("import_report", project_id=project_id, job_id=job.pk)
    return render(request, "annotator/data/import_preview.html", {
        "job": job, "project": job.project, "preview": preview, "error": error, "form": form,
        "fmt": fmt or "", "encoding": encoding or "", "formats": FORMATS,
    })


@project_admin_required
@require_POST
def import_cancel(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    job = _job(project_id, job_id)
    if not import_job_cancel(job=job):  # it was queued meanwhile
        return redirect("import_report", project_id=project_id, job_id=job.pk)
    return redirect("import_upload", project_id=project_id)


@project_admin_required
@require_GET
def import_report(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """Progress, then the counts and every duplicate or rejected row (?kind=, ?page=)."""
    job = _job(project_id, job_id)
    if job.status == ImportJob.Status.PREVIEW:
        return redirect("import_preview", project_id=project_id, job_id=job.pk)
    kind = request.GET.get("kind", "")
    if kind not in ImportIssue.Kind.values:
        kind = ""
    issues = job.issues.only("line", "kind", "reason")
    page = Paginator(issues.filter(kind=kind) if kind else issues, ISSUES_PER_PAGE).get_page(
        request.GET.get("page"))
    # jobs imported before every issue was kept have only the capped job.report
    listed = job.status == ImportJob.Status.SUCCEEDED and issues.exists()
    check = job.vocabulary_checks.order_by("-created_at").first()
    return render(request, "annotator/data/import_report.html", {
        "job": job, "project": job.project, "check": check, "issues": page, "kind": kind,
        "listed": listed,
    })


@project_admin_required
@require_GET
def import_status(request: HttpRequest, project_id: int, job_id: int) -> JsonResponse:
    """The report page's progress bar polls this."""
    job = _job(project_id, job_id)
    return JsonResponse({
        "status": job.status, "finished": job.finished, "percent": job.percent,
        "bytes_read": job.bytes_read, "bytes_total": job.bytes_total, "imported": job.imported,
        "duplicates": job.duplicates, "rejected": job.rejected, "error": job.error,
    })


@project_admin_required
@require_GET
def import_rejected_download(
    request: HttpRequest, project_id: int, job_id: int
) -> StreamingHttpResponse:
    """The rejected rows as CSV, to fix and import again."""
    job = _job(project_id, job_id)
    name = f"{Path(job.filename).stem}-rejected"
    return attachment(import_rejected_csv(job=job), fmt="csv", name=name)


@project_admin_required
@require_GET
def export_download(request: HttpRequest, project_id: int) -> HttpResponse:
    """?format=csv|jsonl&labeled_only=1&gold_only=1&labeler=NAME&since=DATE&until=DATE&bom=1"""
    project = get_object_or_404(Project, pk=project_id)
    params = request.GET
    fmt = params.get("format", "jsonl")
    if fmt not in CONTENT_TYPES:
        return HttpResponse("format must be csv or jsonl", status=400, content_type="text/plain")
    labeler = None
    if params.get("labeler"):
        labeler = get_user_model().objects.filter(username=params["labeler"]).first()
        if labeler is None:
            return HttpResponse("no such labeler", status=400, content_type="text/plain")
    try:
        since = parse_when(params["since"]) if params.get("since") else None
        until = parse_when(params["until"]) if params.get("until") else None
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    rows = export_rows(
        project=project,
        fmt=fmt,
        labeled_only=params.get("labeled_only") in ("1", "true", "on"),
        gold_only=params.get("gold_only") in ("1", "true", "on"),
        labeler=labeler,
        since=since,
        until=until,
        bom=params.get("bom") in ("1", "true", "on"),
    )
    # the import page offers several downloads: each file says which one, and of when
    what = "labeled" if params.get("labeled_only") in ("1", "true", "on") else "all"
    what += "-gold" if params.get("gold_only") in ("1", "true", "on") else ""
    what += "-excel" if params.get("bom") in ("1", "true", "on") else ""
    name = f"{slugify(project.name) or f'project{project.pk}'}-{what}-{timezone.localdate()}"
    return attachment(rows, fmt=fmt, name=name)

