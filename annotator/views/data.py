"""Data pages for admins: upload a file with a column mapping, read an import's
report, download a streamed export. Non-staff get 403, anonymous users the login page."""

import functools

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from annotator.models import ImportJob, Item, Project
from annotator.services.exporting import CONTENT_TYPES, export_rows, parse_when
from annotator.services.importing import (
    FORMATS,
    ImportRejected,
    detect_format,
    import_job_queue,
    import_jobs_fail_stale,
)
from annotator.views.limits import allows_upload


def _staff_only(view):
    @functools.wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, TSV, JSON (array of objects) or JSONL")
    fmt = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "from the extension")] + [(f, f) for f in FORMATS],
    )
    encoding = forms.CharField(required=False, help_text="empty: detected (UTF-8, GB18030 or Windows-1252)")
    text_column = forms.CharField(initial="text")
    label_column = forms.CharField(required=False, help_text="gold label (split gold) or pre-label")
    id_column = forms.CharField(required=False, help_text="-> external id")
    meta_columns = forms.CharField(required=False, help_text="comma-separated, kept in meta")
    kind_column = forms.CharField(required=False)
    turns_column = forms.CharField(
        initial="turns", required=False, help_text="dialogue turns (JSON)"
    )
    split = forms.ChoiceField(choices=Item.Split.choices, initial=Item.Split.POOL)
    skip_invalid = forms.BooleanField(
        required=False,
        help_text="reject empty or too long texts into the report instead of failing",
    )

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            try:
                detect_format(upload.name, data.get("fmt") or None)
            except ImportRejected as exc:
                self.add_error("fmt", str(exc))
        return data


@allows_upload
@_staff_only
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    """The upload is kept and imported by a worker; the report page shows its progress."""
    project = get_object_or_404(Project, pk=project_id)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        job = import_job_queue(
            project=project,
            upload=data["file"],
            user=request.user,
            fmt=data["fmt"] or None,
            encoding=data["encoding"] or None,
            text_column=data["text_column"],
            label_column=data["label_column"] or None,
            id_column=data["id_column"] or None,
            meta_columns=[c.strip() for c in data["meta_columns"].split(",") if c.strip()],
            kind_column=data["kind_column"] or None,
            turns_column=data["turns_column"] or None,
            split=data["split"],
            skip_invalid=data["skip_invalid"],
        )
        return redirect("import_report", project_id=project.pk, job_id=job.pk)
    jobs = project.imports.all()[:10]
    return render(request, "annotator/data/import.html", {
        "project": project, "form": form, "jobs": jobs,
        "upload_limit_mb": settings.UPLOAD_MAX_BYTES // 2**20,
    })


def _job(project_id: int, job_id: int) -> ImportJob:
    jobs = ImportJob.objects.filter(pk=job_id, project_id=project_id)
    import_jobs_fail_stale(jobs)  # a killed import says so instead of "running" forever
    return get_object_or_404(jobs.select_related("project"))


@_staff_only
@require_GET
def import_report(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    job = _job(project_id, job_id)
    check = job.vocabulary_checks.order_by("-created_at").first()
    return render(request, "annotator/data/import_report.html",
                  {"job": job, "project": job.project, "check": check})


@_staff_only
@require_GET
def import_status(request: HttpRequest, project_id: int, job_id: int) -> JsonResponse:
    """The report page's progress bar polls this."""
    job = _job(project_id, job_id)
    return JsonResponse({
        "status": job.status, "finished": job.finished, "percent": job.percent,
        "bytes_read": job.bytes_read, "bytes_total": job.bytes_total, "imported": job.imported,
        "duplicates": job.duplicates, "rejected": job.rejected, "error": job.error,
    })


@_staff_only
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
    return export_response(rows, fmt=fmt, name=project.name)


def export_response(rows, *, fmt: str, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(rows, content_type=CONTENT_TYPES[fmt])
    filename = f"{slugify(name) or 'project'}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
