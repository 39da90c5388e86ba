"""Annotations API (DRF, token or session auth): a project's annotations and its labeled set
as JSONL.

Who may do what, as in the UI: the project's managers (staff or its admins) read every
annotation and export; a member who only labels reads their own annotations and nothing else;
anyone else gets 403, a missing project 404.
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.decorators import api_view
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from annotator.api.access import NO_AUTH, NOT_MANAGER, api_project, error
from annotator.api.serializers.annotations import AnnotationProvenanceSerializer
from annotator.lib.downloads import attachment
from annotator.permissions import can_manage
from annotator.selectors.annotations import STATES, annotations_for
from annotator.services.exporting import export_rows, parse_when


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
        400: error("a filter cannot be read"),
        401: NO_AUTH,
        403: error("neither staff nor a member of the project"),
        404: error("no such project, or a cursor that is not one of ours"),
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
        user = self.request.user
        project = api_project(user, self.kwargs["project_id"])
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
        (401, "application/json"): NO_AUTH,
        (403, "application/json"): NOT_MANAGER,
        (404, "application/json"): error("no such project"),
    },
)
@api_view(["GET"])
def export_jsonl(request: Request, project_id: int):
    project = api_project(request.user, project_id, manage=True)
    rows = export_rows(project=project, fmt="jsonl", labeled_only=True)
    name = f"project{project.id}-labeled-{timezone.localdate()}"
    return attachment(rows, fmt="jsonl", name=name)
