"""Workflow API (DRF, token or session auth): a project's annotations, its labeled set as JSONL,
its model versions (list, activate, download) and retraining.

Who may do what, as in the UI: the project's managers (staff or its admins) read every
annotation, download, activate and retrain; a member who only labels reads their own
annotations and nothing else; anyone else gets 403, a missing project or version 404.
"""

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema,
                                   extend_schema_view)
from rest_framework.decorators import api_view
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from annotator.models import ModelVersion, Project, TrainingRun
from annotator.permissions import can_label, can_manage, managed_project
from annotator.selectors_annotations import STATES, annotations_for
from annotator.serializers import ErrorSerializer
from annotator.serializers_annotations import (
    AnnotationProvenanceSerializer,
    ModelVersionSerializer,
    NothingNewSerializer,
    RetrainRequestSerializer,
    RetrainResponseSerializer,
)
from annotator.services.artifacts import model_version_zip_stream
from annotator.services.exporting import export_rows, parse_when
from annotator.services.training import (
    NothingNewToLearn,
    TooFewClasses,
    model_version_activate,
    training_request,
)
from annotator.views.data import export_response


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


_NO_AUTH = _error("no or invalid credentials (send `Authorization: Token <key>`)")
_NOT_MANAGER = _error("neither staff nor an admin of the project")
_NOT_FOUND = _error("no such project (or version of it)")

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


class AnnotationCursor(CursorPagination):
    """Keyset pages in primary-key order: no OFFSET, so page 10,000 costs what page 1 does."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw and not raw.isdigit():  # DRF would quietly use the default instead
            raise ParseError(f"page_size: a whole number up to {self.max_page_size}")
        return super().get_page_size(request)


def _when(request: Request, name: str):
    value = request.query_params.get(name, "")
    try:
        return parse_when(value) if value else None
    except ValueError as exc:
        raise ParseError(f"{name}: {exc}") from None


@extend_schema_view(get=extend_schema(
    operation_id="project_annotations",
    summary="A project's annotations with their provenance, page by page (cursor)",
    parameters=[
        OpenApiParameter("labeler", str, description="only this labeler's (a username)"),
        OpenApiParameter("since", str, description="created at or after: YYYY-MM-DD or ISO "
                                                   "datetime (server time zone when naive)"),
        OpenApiParameter("until", str, description="created before (exclusive), same format"),
        OpenApiParameter("state", str, enum=STATES, description=(
            "the item's agreement: single (fewer than two annotations), agreed / disagreed (two "
            "or more, same / different labels, not adjudicated), adjudicated")),
    ],
    responses={
        200: AnnotationProvenanceSerializer(many=True),
        400: _error("a filter cannot be read"),
        401: _NO_AUTH,
        403: _error("neither staff nor a member of the project"),
        404: _error("no such project, or a cursor that is not one of ours"),
    },
    examples=[OpenApiExample("one page", response_only=True, value={
        "id": 4211, "item_id": 97, "external_id": "B07-1123", "labeler": "lena",
        "label": "negative", "created_at": "2026-01-31T09:12:00Z",
        "updated_at": "2026-01-31T09:12:00Z", "seconds_spent": 6.5, "picked_by": "uncertainty",
        "strategy": "margin", "model_version": 3, "predicted_label": "positive",
        "predicted_confidence": 0.54,
    })],
))
class AnnotationList(ListAPIView):
    """Managers read every annotation of the project; a labeler only their own, without the
    model's prediction unless the project shows suggestions (never on a gold item)."""

    serializer_class = AnnotationProvenanceSerializer
    pagination_class = AnnotationCursor

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if hasattr(self, "manager"):
            context["hide_predictions"] = not self.manager and not self.project.show_suggestions
            context["manager"] = self.manager
        return context

    def get_queryset(self):
        project = get_object_or_404(Project, id=self.kwargs["project_id"])
        user = self.request.user
        if not can_label(user, project):
            raise PermissionDenied("you are not a member of this project")
        state = self.request.query_params.get("state", "")
        if state and state not in STATES:
            raise ParseError(f"state: use one of {', '.join(STATES)}")
        manager = can_manage(user, project)
        if state and not manager:
            raise PermissionDenied("state compares your labels with other labelers': "
                                   "managers only")
        self.project, self.manager = project, manager
        return annotations_for(
            project=project,
            only_labeler=None if manager else user,
            labeler=self.request.query_params.get("labeler", ""),
            since=_when(self.request, "since"), until=_when(self.request, "until"), state=state,
        )


@extend_schema(
    operation_id="project_export_jsonl",
    summary="The labeled set as JSON Lines, streamed (the rows of `manage.py export_items`)",
    responses={
        (200, "application/x-ndjson"): OpenApiResponse(
            OpenApiTypes.STR, description="one item per line with its annotations",
            examples=[OpenApiExample("one line", value=(
                '{"item_id": 97, "external_id": "B07-1123", "text": "Fell apart.", '
                '"label": "negative", "labels": ["negative"], "labelers": ["lena"], ...}\n'))]),
        (401, "application/json"): _NO_AUTH,
        (403, "application/json"): _NOT_MANAGER,
        (404, "application/json"): _NOT_FOUND,
    },
)
@api_view(["GET"])
def export_jsonl(request: Request, project_id: int):
    project = managed_project(request.user, project_id)
    rows = export_rows(project=project, fmt="jsonl", labeled_only=True)
    name = f"project{project.id}-labeled-{timezone.localdate()}"
    return export_response(rows, fmt="jsonl", name=name)


@extend_schema(
    operation_id="project_versions",
    summary="The project's model versions, newest first, with metrics and their reliability",
    responses={200: ModelVersionSerializer(many=True), 401: _NO_AUTH, 403: _NOT_MANAGER,
               404: _NOT_FOUND},
    examples=[OpenApiExample("one version", response_only=True, value=[_VERSION_EXAMPLE])],
)
@api_view(["GET"])
def versions(request: Request, project_id: int) -> Response:
    project = managed_project(request.user, project_id)
    rows = ModelVersion.objects.filter(project=project).select_related("distilled_from")
    return Response(ModelVersionSerializer(rows, many=True).data)


@extend_schema(
    operation_id="project_version_activate",
    summary="Make a version the active one (roll back or forward); the pool is re-ranked with it",
    request=None,
    responses={200: ModelVersionSerializer, 401: _NO_AUTH, 403: _NOT_MANAGER, 404: _NOT_FOUND},
    examples=[OpenApiExample("activated", response_only=True, value=_VERSION_EXAMPLE)],
)
@api_view(["POST"])
def version_activate(request: Request, project_id: int, version_id: int) -> Response:
    managed_project(request.user, project_id)
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
        (401, "application/json"): _NO_AUTH,
        (403, "application/json"): _NOT_MANAGER,
        (404, "application/json"): _NOT_FOUND,
    },
)
@api_view(["GET"])
def version_download(request: Request, project_id: int, version_id: int):
    managed_project(request.user, project_id)
    version = get_object_or_404(ModelVersion, id=version_id, project_id=project_id)
    response = StreamingHttpResponse(model_version_zip_stream(version),
                                     content_type="application/zip")
    name = f"project{project_id}-v{version.version}.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@extend_schema(
    operation_id="project_retrain",
    summary="Queue a retrain, or get the run already queued or running",
    request={"application/json": RetrainRequestSerializer},  # forms work too, undocumented
    responses={
        202: RetrainResponseSerializer,
        400: OpenApiResponse(description="the body is not valid; it names each problem"),
        401: _NO_AUTH,
        403: _NOT_MANAGER,
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
    project = managed_project(request.user, project_id)
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
