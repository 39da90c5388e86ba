"""Project pages for managers: create (staff), settings and label set (staff or the
project's admin), archive."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotator.forms.projects import LabelFormSet, ProjectSettingsForm, label_rows
from annotator.lib.guidelines import guidelines_html
from annotator.models import Project
from annotator.permissions import project_admin_required
from annotator.selectors.projects import label_usage
from annotator.services import projects
from annotator.services.background_failures import failures_dismiss


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("only staff create projects")
    data = request.POST if request.method == "POST" else None
    form = ProjectSettingsForm(data)
    labels = LabelFormSet(data, initial=label_rows(None), prefix="labels")
    if data is not None and all([form.is_valid(), labels.is_valid()]):
        project = projects.project_create(fields=form.cleaned_data, labels=labels.labels)
        messages.success(request, f"Project {project.name} created. Next: import its texts "
                                  "and add people.")
        return redirect("project_settings", project_id=project.pk)
    return render(request, "annotator/projects/new.html", {
        "form": form, "labels": labels, "rows": [(row, []) for row in labels],
    })


@project_admin_required
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    data = request.POST if request.method == "POST" else None
    form = ProjectSettingsForm(data, instance=project)
    guidelines = project.guidelines
    if data is not None and "preview" in data:  # show the guidelines as typed, save nothing
        guidelines = data.get("guidelines", "")
    elif data is not None and form.is_valid():
        for note in projects.project_update(project=project, fields=form.cleaned_data):
            messages.info(request, note)
        messages.success(request, "Settings saved.")
        return redirect("project_settings", project_id=project.pk)
    return render(request, "annotator/projects/settings.html", {
        "project": project, "form": form, "preview": guidelines_html(guidelines),
    })


@project_admin_required
def project_labels(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    data = request.POST if request.method == "POST" else None
    labels = LabelFormSet(data, initial=label_rows(project), prefix="labels")
    problems = []
    if data is not None and labels.is_valid():
        try:
            projects.label_set_update(project=project, labels=labels.labels,
                                      renamed=labels.renamed)
        except ValidationError as error:
            problems = error.messages
        else:
            messages.success(request, "Label set saved.")
            return redirect("project_labels", project_id=project.pk)
    usage = label_usage(project, project.label_names)
    rows = [(form, usage.get(form.initial.get("original", ""), [])) for form in labels]
    return render(request, "annotator/projects/labels.html", {
        "project": project, "labels": labels, "rows": rows, "problems": problems,
    })


@require_POST
@project_admin_required
def project_archive(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    if request.POST.get("archived") == "0":
        projects.project_unarchive(project=project)
        messages.success(request, f"{project.name} is open again: its labelers see it.")
    else:
        projects.project_archive(project=project)
        messages.success(request, f"{project.name} is archived: labelers no longer see it and "
                                  "it takes no labels. Nothing was deleted.")
    return redirect("project_settings", project_id=project.pk)


@require_POST
@project_admin_required
def project_failures_dismiss(request: HttpRequest, project_id: int) -> HttpResponse:
    """Hide the project's background failures (they stay in the database and the logs)."""
    failures_dismiss(project=get_object_or_404(Project, pk=project_id))
    back = request.POST.get("next", "")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "project_list")
