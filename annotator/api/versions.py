"""Model versions API (DRF, token or session auth): list, activate, download, and retraining;
the project's managers only (staff or its admins), a missing project or version 404."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
)
from rest_framework.decorators import api_view
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from annotator.api.access import NO_AUTH, NOT_MANAGER, api_project, error
from annotator.api.serializers.versions import (
    ModelVersionSerializer,
    NothingNewSerializer,
    RetrainRequestSerializer,
    RetrainResponseSerializer,
)
from annotator.lib.downloads import attachment
from annotator.ml.artifacts import model_version_zip_stream
from annotator.models import ModelVersion, TrainingRun
from annotator.services.training import (
    NothingNewToLearn,
    TooFewClasses,
    model_version_activate,
    training_request,
)

_NOT_FOUND = error("no such project (or version of it)")


_VERSION_EXAMPLE = {
    "version_id": 7, "number": 3, "active": True, "label_count": 1200,
    "base_model": "intfloat/multilingual-e5-small",
    "metrics": {"accuracy": 0.91, "macro_f1": 0.88, "support": 240, "evaluated_on": "gold"},
    "reliability": {"n": 240, "on": "gold", "reliable": True, "reason": ""},
    "distilled_from": None, "distilled_layers": None,
    "activation": {
        "activated": True, "compared_with": 2, "on": "gold",
        "reason": "activated: macro-F1 0.880 vs 0.864 of v2 on the same 240 gold items",
        "comparison": {"n": 240, "new_macro_f1": 0.88, "old_macro_f1": 0.864,
                       "difference": 0.016, "upper_bound": 0.041, "worse": False},
        "rule": {"min_items": 30, "confidence": 0.95, "tolerance": 0.01, "resamples": 2000,
                 "seed": 0},
    },
    "not_activated_reason": "",
    "created_at": "2026-01-31T09:12:00Z",
}


@extend_schema(
    operation_id="project_versions",
    summary="The project's model versions, newest first, with metrics and their reliability",
    responses={200: ModelVersionSerializer(many=True), 401: NO_AUTH, 403: NOT_MANAGER,
               404: _NOT_FOUND},
    examples=[OpenApiExample("one version", response_only=True, value=[_VERSION_EXAMPLE])],
)
@api_view(["GET"])
def versions(request: Request, project_id: int) -> Response:
    project = api_project(request.user, project_id, manage=True)
    rows = ModelVersion.objects.filter(project=project).select_related("distilled_from")
    return Response(ModelVersionSerializer(rows, many=True).data)


@extend_schema(
    operation_id="project_version_activate",
    summary="Make a version the active one (roll back or forward); the pool is re-ranked with it",
    request=None,
    responses={200: ModelVersionSerializer, 401: NO_AUTH, 403: NOT_MANAGER, 404: _NOT_FOUND},
    examples=[OpenApiExample("activated", response_only=True, value=_VERSION_EXAMPLE)],
)
@api_view(["POST"])
def version_activate(request: Request, project_id: int, version_id: int) -> Response:
    api_project(request.user, project_id, manage=True)
    version = get_object_or_404(ModelVersion, id=version_id, project_id=project_id)
    activated = model_version_activate(version=version, user=request.user)
    return Response(ModelVersionSerializer(activated).data)


@extend_schema(
    operation_id="project_version_download",
    summary="A version's files (weights, tokenizer, config, metrics) as a zip, streamed",
    responses={
        (200, "application/zip"): OpenApiResponse(
            OpenApiTypes.BINARY, description="the save_pretrained folder, zipped",
            examples=[OpenApiExample("zip", value="PK...")]),
        (401, "application/json"): NO_AUTH,
        (403, "application/json"): NOT_MANAGER,
        (404, "application/json"): _NOT_FOUND,
    },
)
@api_view(["GET"])
def version_download(request: Request, project_id: int, version_id: int):
    api_project(request.user, project_id, manage=True)
    version = get_object_or_404(ModelVersion, id=version_id, project_id=project_id)
    return attachment(model_version_zip_stream(version), fmt="zip",
                      name=f"project{project_id}-v{version.version}")


@extend_schema(
    operation_id="project_retrain",
    summary="Queue a retrain, or get the run already queued or running",
    request={"application/json": RetrainRequestSerializer},  # forms work too, undocumented
    responses={
        202: RetrainResponseSerializer,
        400: OpenApiResponse(description="the body is not valid; it names each problem"),
        401: NO_AUTH,
        403: NOT_MANAGER,
        404: _NOT_FOUND,
        409: OpenApiResponse(NothingNewSerializer, description=(
            "the labels are of fewer than two classes (force does not help; active_version "
            "null), no label changed since the newest version was trained (send force=true), "
            "or no run could be queued")),
    },
    examples=[
        OpenApiExample("anyway", request_only=True, value={"force": True}),
        OpenApiExample("queued", response_only=True, status_codes=["202"],
                       value={"run_id": 42, "status": "queued"}),
    ],
)
@api_view(["POST"])
def retrain(request: Request, project_id: int) -> Response:
    project = api_project(request.user, project_id, manage=True)
    if not isinstance(request.data, dict):
        raise ParseError("the body must be a JSON object, e.g. {\"force\": true}")
    body = RetrainRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        run = training_request(project=project, trigger=TrainingRun.Trigger.API,
                               user=request.user, force=body.validated_data["force"])
    except TooFewClasses as refused:
        return Response({"detail": str(refused), "active_version": None}, status=409)
    except NothingNewToLearn as nothing:
        return Response({"detail": f"{nothing}; send force=true to train anyway",
                         "active_version": nothing.version.version}, status=409)
    if run is None:
        return Response({"detail": "could not queue a run", "active_version": None}, status=409)
    return Response({"run_id": run.id, "status": run.status}, status=202)
