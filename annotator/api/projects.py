"""Projects and items API (DRF): the same access rules as the app's pages.

Members (and staff) read a project and its items; staff create projects; staff and the
project's admin change it and push items. A project that does not exist is 404, one the
user has no part in is 403, as for the prediction endpoint.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import APIException, NotFound, ParseError, PermissionDenied
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from annotator.api.access import NO_AUTH, api_project, error
from annotator.api.serializers.projects import (
    ItemDetailSerializer,
    ItemPageSerializer,
    ItemSerializer,
    ProjectSerializer,
    ProjectWriteSerializer,
    PushItemSerializer,
    PushResponseSerializer,
    item_filters,
    item_search,
    push_rows,
)
from annotator.models import Item
from annotator.permissions import can_manage
from annotator.selectors.items import item_detail, items_filtered
from annotator.selectors.projects import projects_for_user
from annotator.selectors.search import SORTS, SearchForbidden, SearchRejected, items_search
from annotator.services import projects as project_services
from annotator.services.importing import ImportRejected, jsonl_rows
from annotator.services.items import PushConflict, items_push
from annotator.services.zero_shot import zero_shot_suggestion


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class NDJSONParser(BaseParser):
    """JSON lines: one item object per line (blank lines skipped)."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None) -> list[dict]:
        try:
            lines = stream.read().decode("utf-8").splitlines() if stream else []
            return [row for _, row in jsonl_rows(lines)]
        except UnicodeDecodeError:
            raise ParseError("the body is not UTF-8") from None
        except ImportRejected as exc:
            raise ParseError(f"JSON lines: {exc}") from None


class ItemCursor(CursorPagination):
    """The list in id order (oldest or newest first): a cursor, stable while items arrive."""

    ordering = "pk"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ItemPages(BasePagination):
    """Orders a cursor cannot hold (relevance, when a labeler labeled): `page` 1, 2, ...
    by offset, without a count; `next` is null on the last page."""

    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset, request, view=None) -> list:
        self.request = request
        self.size = ItemCursor().get_page_size(request)
        self.number = _page_number(request.query_params.get("page", "1"))
        start = (self.number - 1) * self.size
        rows = list(queryset[start:start + self.size + 1])
        self.has_next = len(rows) > self.size
        return rows[:self.size]

    def get_paginated_response(self, data) -> Response:
        url = self.request.build_absolute_uri()
        previous = None
        if self.number == 2:
            previous = remove_query_param(url, "page")
        elif self.number > 2:
            previous = replace_query_param(url, "page", self.number - 1)
        following = replace_query_param(url, "page", self.number + 1) if self.has_next else None
        return Response({"next": following, "previous": previous, "results": data})


MAX_PAGE = 1000  # deeper pages by offset cost more than they are worth: narrow the search


def _page_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise ParseError(f"page: a number from 1 to {MAX_PAGE}")
    return int(value)


def items_page(queryset) -> BasePagination:
    """A cursor where the order is the item id's, pages by number otherwise."""
    ordering = tuple(queryset.query.order_by)
    if ordering in (("pk",), ("-pk",)):
        cursor = ItemCursor()
        cursor.ordering = ordering[0]
        return cursor
    return ItemPages()


AUTH_ERRORS = {
    401: NO_AUTH,
    403: error("not allowed in this project"),
    404: error("no such project (or item)"),
}
LABELS = [{"name": "negative"}, {"name": "neutral"}, {"name": "positive"}]



@extend_schema(
    methods=["GET"], operation_id="projects_list",
    summary="The projects you may label or manage (staff: all)",
    responses={200: ProjectSerializer(many=True), 401: AUTH_ERRORS[401]},
)
@extend_schema(
    methods=["POST"], operation_id="project_create", summary="Create a project (staff only)",
    request=ProjectWriteSerializer,
    responses={201: ProjectSerializer, 400: OpenApiResponse(
        description="invalid settings or label set; the body names each problem by field"),
        401: AUTH_ERRORS[401], 403: error("only staff create projects")},
    examples=[OpenApiExample("shoe reviews", request_only=True, value={
        "name": "Shoe reviews", "text_kind": "review", "labels": LABELS})],
)
@api_view(["GET", "POST"])
@parser_classes([JSONParser])
def projects(request: Request) -> Response:
    if request.method == "GET":
        visible = projects_for_user(request.user).order_by("pk")
        return Response(ProjectSerializer(visible, many=True).data)
    if not request.user.is_staff:
        raise PermissionDenied("only staff create projects")
    body = ProjectWriteSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    project = project_services.project_create(fields=body.validated_data["fields"],
                                              labels=body.validated_data["labels"])
    return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@extend_schema(
    methods=["GET"], operation_id="project_detail", summary="One project (members)",
    responses={200: ProjectSerializer, **AUTH_ERRORS},
)
@extend_schema(
    methods=["PATCH"], operation_id="project_update",
    summary="Change a project's settings or label set (staff or the project's admin)",
    request=ProjectWriteSerializer,
    responses={200: ProjectSerializer, 400: OpenApiResponse(
        description="invalid settings or label set (e.g. deleting a label in use)"),
        **AUTH_ERRORS},
    examples=[OpenApiExample("rename a label", request_only=True, value={
        "labels": [{"name": "negative"}, {"name": "mixed"}, {"name": "positive"}],
        "renamed": {"neutral": "mixed"}})],
)
@api_view(["GET", "PATCH"])
@parser_classes([JSONParser])
def project(request: Request, project_id: int) -> Response:
    if request.method == "GET":
        return Response(ProjectSerializer(api_project(request.user, project_id)).data)
    project = api_project(request.user, project_id, manage=True)
    body = ProjectWriteSerializer(project, data=request.data, partial=True)
    body.is_valid(raise_exception=True)
    try:
        with transaction.atomic():
            if body.validated_data["fields"]:
                project_services.project_update(project=project,
                                                fields=body.validated_data["fields"])
            if body.validated_data["labels"] is not None:
                project_services.label_set_update(project=project,
                                                  labels=body.validated_data["labels"],
                                                  renamed=body.validated_data["renamed"])
    except DjangoValidationError as error:  # a label in use, a concurrent change
        return Response({"labels": error.messages}, status=status.HTTP_400_BAD_REQUEST)
    project.refresh_from_db()
    return Response(ProjectSerializer(project).data)


FILTERS = [
    OpenApiParameter("q", str, description=(
        "text contains this (case-insensitive, any script, 1 to 500 characters; no word "
        "splitting needed for Chinese). 3+ characters use the trigram index; 1-2 characters "
        "scan the project's items newest first (docs/search.md)")),
    OpenApiParameter("sort", str, enum=list(SORTS), description=(
        "relevance (best text match first; without `q` of 3+ characters: newest), newest or "
        "oldest (by arrival; with `labeler`: by when they labeled). Default: relevance with "
        "`q`, else oldest")),
    OpenApiParameter("label", str, description=(
        "an annotation with this label (a labeler: their own annotations only)")),
    OpenApiParameter("labeler", str, description=(
        "annotated by this username, on the same annotation as `label`; a labeler may only "
        "name themselves (403 otherwise)")),
    OpenApiParameter("predicted_label", str, description=(
        "the active version's prediction (a labeler: only where the project shows "
        "suggestions, 403 otherwise)")),
    OpenApiParameter("confidence_min", float, description=(
        "the prediction's top probability is at least this (0 to 1); as predicted_label")),
    OpenApiParameter("confidence_max", float, description="at most this (0 to 1)"),
    OpenApiParameter("split", str, enum=Item.Split.values),
    OpenApiParameter("labeled", bool, description="true: at least one annotation"),
    OpenApiParameter("kind", str),
    OpenApiParameter("meta__<field>", str, description=(
        "meta field equals the value, e.g. meta__store=tmall (numbers match too)")),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME),
    OpenApiParameter("cursor", str, description=(
        "from `next` / `previous` (oldest or newest first without `labeler`)")),
    OpenApiParameter("page", int, description=(
        f"from `next` / `previous` (relevance, or `labeler` with a date order); 1 to {MAX_PAGE}")),
    OpenApiParameter("page_size", int, description="1 to 1000, default 100"),
]


@extend_schema(
    methods=["GET"], operation_id="items_list",
    summary="The project's items, searched and filtered, paginated (members)",
    description=(
        "Managers see every item with its imported, gold and final labels, and filter by "
        "anyone's labels. A labeler sees the pool only (no gold items; `split=gold` answers "
        "403) and none of those labels; `label` reads their own annotations. Follow `next`: "
        "a cursor in id order, page numbers for relevance and labeling-time orders."),
    parameters=FILTERS,
    responses={200: ItemPageSerializer, 400: error("a malformed filter or search"),
               **AUTH_ERRORS},
)
@extend_schema(
    methods=["POST"], operation_id="items_push",
    summary="Push up to ANNOTATOR_API_MAX_PUSH_ITEMS (5,000) items (staff or project admin)",
    description=(
        "A JSON array of items, or JSON lines (`Content-Type: application/x-ndjson`). Each item "
        "is cleaned and deduplicated as a file import is. Idempotent by `external_id`: a retry "
        "creates nothing new. Each row answers created / exists / duplicate / rejected."),
    request={"application/json": PushItemSerializer(many=True),
             "application/x-ndjson": PushItemSerializer(many=True)},
    responses={200: PushResponseSerializer, 400: error(
        "not an array, no items, too many items, or malformed JSON"), **AUTH_ERRORS,
        409: error("a concurrent push or import wrote some of these texts; send it again")},
    examples=[
        OpenApiExample("two reviews", request_only=True, value=[
            {"external_id": "A-1001", "text": "Love the fit, runs true to size.",
             "meta": {"store": "tmall"}},
            {"external_id": "A-1002", "text": "鞋子质量很差，穿了一周就坏了。", "label": "negative"}]),
        OpenApiExample("answer", response_only=True, value={
            "created": 1, "existing": 1, "duplicates": 0, "rejected": 0, "rows": [
                {"index": 0, "status": "exists", "item_id": 17},
                {"index": 1, "status": "created", "item_id": 18}]}),
    ],
)
@api_view(["GET", "POST"])
@parser_classes([JSONParser, NDJSONParser])
def items(request: Request, project_id: int) -> Response:
    if request.method == "GET":
        project = api_project(request.user, project_id)
        manager = can_manage(request.user, project)
        filters = item_filters(request.query_params)
        if filters.get("split") == Item.Split.GOLD and not manager:
            raise PermissionDenied("the gold items are held out: only managers see them")
        try:
            found = items_search(project=project, user=request.user, meta=filters.pop("meta"),
                                 **item_search(request.query_params))
        except SearchForbidden as exc:
            raise PermissionDenied(str(exc)) from None
        except SearchRejected as exc:
            raise ParseError(str(exc)) from None
        found = items_filtered(project=project, items=found, include_gold=manager, **filters)
        page = items_page(found)
        rows = page.paginate_queryset(found, request)
        return page.get_paginated_response(
            ItemSerializer(rows, many=True, context={"manager": manager}).data)
    project = api_project(request.user, project_id, manage=True)
    try:
        result = items_push(project=project, rows=push_rows(request.data))
    except PushConflict as exc:
        raise Conflict(str(exc)) from None
    return Response(PushResponseSerializer(result).data)


@extend_schema(
    operation_id="item_detail", summary="One item with its annotations and latest prediction",
    description=(
        "Managers see every annotation and the latest prediction. A labeler sees only their "
        "own annotation, no gold item (404), and the prediction only where the project shows "
        "suggestions to labelers."),
    responses={200: ItemDetailSerializer, **AUTH_ERRORS},
)
@api_view(["GET"])
def item(request: Request, project_id: int, item_id: int) -> Response:
    project = api_project(request.user, project_id)
    manager = can_manage(request.user, project)
    try:
        found, annotations, prediction = item_detail(
            project=project, item_id=item_id, viewer=None if manager else request.user)
    except Item.DoesNotExist:
        raise NotFound("no such item in this project") from None
    found.annotations_list, found.latest = annotations, prediction
    found.zero_shot_guess = zero_shot_suggestion(item=found, manager=manager)
    return Response(ItemDetailSerializer(found, context={"manager": manager}).data)

