"""Model registry, retrain triggers, live progress and version download (staff and the
project's admins)."""


from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotator.lib.downloads import attachment
from annotator.ml.artifacts import model_version_zip_stream
from annotator.models import ModelVersion, Project, TrainingRun
from annotator.permissions import project_admin_required
from annotator.selectors.readability import readability_for
from annotator.selectors.training import latest_version_if_nothing_new, stopping_signal_for
from annotator.services.distillation import model_version_distill_request
from annotator.services.readability import readability_confirm, vocabulary_check_request
from annotator.services.training import (
    NothingNewToLearn,
    TooFewClasses,
    model_version_activate,
    training_request,
)


def _run_state(run: TrainingRun | None) -> dict:
    if run is None:
        return {"run": None}
    return {"run": run.id, "status": run.status, "trigger": run.trigger,
            "progress": run.progress, "error": run.error[:500], "attempts": run.attempts}


@require_GET
@project_admin_required
def model_registry(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    versions = ModelVersion.objects.filter(project=project).select_related(
        "training_run__triggered_by", "distilled_from"
    )
    runs = TrainingRun.objects.filter(project=project).select_related("triggered_by")[:10]
    check = readability_for(project)
    return render(request, "annotator/training/registry.html", {
        "project": project, "versions": versions, "runs": runs,
        "stop_signal": stopping_signal_for(project), "check": check,
        "confirmed": project.readability_confirmed_model == project.effective_model_name,
        "up_to_date": latest_version_if_nothing_new(project),
        "distill_layers": settings.DISTILL_LAYERS,
    })


@require_POST
@project_admin_required
def vocabulary_check_now(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    vocabulary_check_request(project=project)
    messages.info(request, f"A worker is checking {project.effective_model_name} on this "
                           "project's texts; reload in a moment.")
    return redirect("model_registry", project_id=project.id)


@require_POST
@project_admin_required
def vocabulary_confirm(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    readability_confirm(project=project)
    messages.warning(request, f"Scheduled retraining resumes with {project.effective_model_name}"
                              " although it cannot read this project's texts well.")
    return redirect("model_registry", project_id=project.id)


@require_POST
@project_admin_required
def retrain_now(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, id=project_id)
    try:
        run = training_request(project=project, trigger=TrainingRun.Trigger.MANUAL,
                               user=request.user, force=request.POST.get("force") == "1")
    except TooFewClasses as refused:
        messages.error(request, f"Nothing queued: {refused}.")
        return redirect("model_registry", project_id=project.id)
    except NothingNewToLearn as nothing:
        messages.warning(request, f"Nothing queued: {nothing}, so a retrain would make the "
                                  "same model again. \"Retrain anyway\" trains all the same.")
        return redirect("model_registry", project_id=project.id)
    messages.info(request, f"Training run {run.id} is {run.status}." if run else "Nothing queued.")
    check = readability_for(project)
    if run and check and check.unreadable:
        messages.warning(request, f"{project.effective_model_name} cannot read this project's "
                                  "texts well: this version will learn little from them.")
    return redirect("model_registry", project_id=project.id)


@require_POST
@project_admin_required
def version_activate(request: HttpRequest, project_id: int, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, id=version_id, project_id=project_id)
    refused = version.activation.get("activated") is False and not version.is_active
    model_version_activate(version=version, user=request.user)
    anyway = f" anyway (it was {version.activation['reason']})" if refused else ""
    messages.info(request, f"Version {version.version} is now active{anyway}.")
    return redirect("model_registry", project_id=project_id)


@require_POST
@project_admin_required
def version_distill(request: HttpRequest, project_id: int, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, id=version_id, project_id=project_id)
    try:
        layers = model_version_distill_request(
            version=version, layers=int(request.POST.get("layers") or 0) or None)
    except ValueError as error:
        messages.error(request, f"Nothing queued: {error}.")
    else:
        messages.info(request, f"A training worker is distilling v{version.version} into a "
                               f"{layers}-layer student; it appears here as a new, inactive "
                               "version to compare and activate.")
    return redirect("model_registry", project_id=project_id)


@require_GET
@project_admin_required
def training_progress(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_object_or_404(Project, id=project_id)
    return JsonResponse(_run_state(TrainingRun.objects.filter(project=project).first()))


@require_GET
@project_admin_required
def version_download(request: HttpRequest, project_id: int, version_id: int):
    version = get_object_or_404(ModelVersion, id=version_id, project_id=project_id)
    return attachment(model_version_zip_stream(version), fmt="zip",
                      name=f"project{project_id}-v{version.version}")

