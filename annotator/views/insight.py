"""Project dashboard and sentiment analytics (staff and the project's admins)."""

import csv

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotator.models import Project
from annotator.permissions import project_admin_required
from annotator.selectors import insight as selectors_insight
from annotator.services import insight_snapshots


@require_GET
@project_admin_required
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    context = insight_snapshots.page_context(project, "dashboard")
    return render(request, "annotator/insight/dashboard.html", {"project": project, **context})


@require_GET
@project_admin_required
def analytics(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    by = request.GET.get("by", "kind")
    try:
        context = insight_snapshots.page_context(project, "analytics", by)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    return render(request, "annotator/insight/analytics.html", {"project": project, **context})


def _cell(value) -> str:
    """Spreadsheet-safe: a value starting with = + - @ is not taken for a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@require_GET
@project_admin_required
def analytics_csv(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    source, by = request.GET.get("source", "labels"), request.GET.get("by", "kind")
    try:
        report = selectors_insight.sentiment_breakdown(project, source=source, by=by)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    slug = by.replace(":", "-")
    response["Content-Disposition"] = (
        f'attachment; filename="project{project.id}-{source}-by-{slug}.csv"'
    )
    writer = csv.writer(response, lineterminator="\n")
    labels = report["labels"]
    writer.writerow(["group", "items", "total", *map(_cell, labels),
                     *(_cell(f"{label}_share") for label in labels)])
    for row in report["rows"]:
        writer.writerow([_cell(row["group"]), row["items"], row["total"], *row["counts"],
                         *(f"{share:.4f}" for share in row["shares"])])
    return response
