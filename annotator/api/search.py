"""Search by meaning, "more like this", near-duplicate groups and bulk labels (DRF).

Members search the project's pool by meaning (gold items are never embedded, so never found);
a labeler's answer carries no label of anyone else, as everywhere in the API. Bulk labels:
the project's admins, and its labelers where the project allows it
(`bulk_labeling_by_labelers`); each action can be undone by its author or an admin.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator.api.access import NO_AUTH, api_project, error
from annotator.api.serializers.search import (
    BulkLabelingSerializer,
    BulkLabelRequestSerializer,
    BulkLabelResultSerializer,
    BulkUndoSerializer,
    DuplicateGroupSerializer,
    SimilarPageSerializer,
)
from annotator.models import BulkLabeling, Item, Project
from annotator.permissions import can_manage
from annotator.selectors.duplicates import duplicate_groups, group_items
from annotator.services.bulk_labeling import BulkRefused, bulk_label, bulk_label_undo
from annotator.services.near_duplicates import near_duplicates_request
from annotator.services.similarity import NotSearchable, similar_to_item, similar_to_text

ERRORS = {401: NO_AUTH, 403: error("not allowed in this project"),
          404: error("no such project (or item)")}
K = OpenApiParameter("k", OpenApiTypes.INT, description="how many (1 to 500, default 50)")


def _k(request: Request) -> int:
    try:
        k = int(request.query_params.get("k", 50))
    except ValueError:
        raise ParseError("k: a whole number from 1 to 500") from None
    if not 1 <= k <= 500:
        raise ParseError("k: a whole number from 1 to 500")
    return k


def _page(project: Project, user, found: list[tuple[int, float]]) -> dict:
    items = Item.objects.in_bulk([item_id for item_id, _ in found])
    rows = [{"similarity": round(score, 4), "item": items[item_id]}
            for item_id, score in found
            if item_id in items and items[item_id].split == Item.Split.POOL]
    context = {"manager": can_manage(user, project)}
    return SimilarPageSerializer({"results": rows}, context=context).data


@extend_schema(
    operation_id="items_by_meaning", summary="Pool items nearest in meaning to a typed query",
    parameters=[OpenApiParameter("q", OpenApiTypes.STR, required=True,
                                 description="up to 500 characters, any language"), K],
    responses={200: SimilarPageSerializer, 400: error("no query, too long, nothing to search "
                                                      "by, or no embeddings yet"), **ERRORS},
)
@api_view(["GET"])
def by_meaning(request: Request, project_id: int) -> Response:
    project = api_project(request.user, project_id)
    try:
        found = similar_to_text(project=project, text=request.query_params.get("q", ""),
                                k=_k(request))
    except NotSearchable as refused:
        raise ParseError(str(refused)) from None
    return Response(_page(project, request.user, found))


@extend_schema(
    operation_id="item_more_like_this", summary="Pool items nearest in meaning to one item",
    parameters=[K],
    responses={200: SimilarPageSerializer, 400: error("the item has no embedding yet"),
               **ERRORS},
)
@api_view(["GET"])
def more_like_this(request: Request, project_id: int, item_id: int) -> Response:
    project = api_project(request.user, project_id)
    item = Item.objects.filter(project=project, pk=item_id).first()
    if item is None or (item.split != Item.Split.POOL and not can_manage(request.user, project)):
        raise NotFound("no such item in this project")
    try:
        found = similar_to_item(project=project, item=item, k=_k(request))
    except NotSearchable as refused:
        raise ParseError(str(refused)) from None
    return Response(_page(project, request.user, found))


@extend_schema(
    methods=["GET"], operation_id="duplicate_groups",
    summary="Groups of near-duplicates in the open pool, biggest first",
    responses={200: DuplicateGroupSerializer(many=True), **ERRORS},
)
@extend_schema(
    methods=["POST"], operation_id="duplicate_groups_refresh",
    summary="Look for the groups again (queue bulk); managers only", request=None,
    responses={202: None, **ERRORS},
)
@api_view(["GET", "POST"])
def groups(request: Request, project_id: int) -> Response:
    if request.method == "POST":
        project = api_project(request.user, project_id, manage=True)
        near_duplicates_request(project=project)
        return Response(status=202)
    project = api_project(request.user, project_id)
    return Response(DuplicateGroupSerializer(duplicate_groups(project), many=True).data)


@extend_schema(
    operation_id="duplicate_group_items", summary="The pool items of one near-duplicate group",
    responses={200: SimilarPageSerializer, **ERRORS},
)
@api_view(["GET"])
def group(request: Request, project_id: int, group_id: int) -> Response:
    project = api_project(request.user, project_id)
    found = [(item.pk, 1.0) for item in group_items(project, group_id)[:500]]
    return Response(_page(project, request.user, found))


@extend_schema(
    methods=["GET"], operation_id="bulk_labels_list",
    summary="The latest bulk actions (a labeler: their own)",
    responses={200: BulkLabelingSerializer(many=True), **ERRORS},
)
@extend_schema(
    methods=["POST"], operation_id="bulk_label_create", summary="Label many items at once",
    request=BulkLabelRequestSerializer,
    responses={201: BulkLabelResultSerializer,
               400: error("not a label of the project, nothing selected, or too many"),
               **ERRORS},
)
@api_view(["GET", "POST"])
def bulk_labels(request: Request, project_id: int) -> Response:
    project = api_project(request.user, project_id)
    if request.method == "GET":
        rows = project.bulk_labelings.select_related("user")
        if not can_manage(request.user, project):
            rows = rows.filter(user=request.user)
        return Response(BulkLabelingSerializer(rows[:200], many=True).data)
    body = BulkLabelRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        bulk, skipped = bulk_label(user=request.user, project=project,
                                   item_ids=body.validated_data["item_ids"],
                                   label=body.validated_data["label"],
                                   query=body.validated_data["query"])
    except DjangoPermissionDenied as refused:
        raise PermissionDenied(str(refused)) from None
    except BulkRefused as refused:
        raise ParseError(str(refused)) from None
    return Response(BulkLabelResultSerializer({"bulk": bulk, "skipped_items": skipped}).data,
                    status=201)


@extend_schema(
    operation_id="bulk_label_undo", summary="Undo one bulk action: its labels are removed",
    request=None, responses={200: BulkUndoSerializer, **ERRORS},
)
@api_view(["POST"])
def bulk_label_undo_view(request: Request, project_id: int, bulk_id: int) -> Response:
    project = api_project(request.user, project_id)
    bulk = get_object_or_404(BulkLabeling, pk=bulk_id, project=project)
    try:
        removed = bulk_label_undo(user=request.user, bulk=bulk)
    except DjangoPermissionDenied as refused:
        raise PermissionDenied(str(refused)) from None
    return Response(BulkUndoSerializer({"removed": removed}).data)
