"""Reads of a project's items: filtered lists and one item's detail (the items API)."""

from datetime import datetime

from django.db.models import Q, QuerySet

from annotator.models import Annotation, Item, Prediction, Project


def items_filtered(
    *,
    project: Project,
    items: QuerySet[Item] | None = None,
    split: str | None = None,
    labeled: bool | None = None,
    kind: str | None = None,
    meta: dict[str, str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    include_gold: bool = True,
) -> QuerySet[Item]:
    """The project's items, oldest first, or `items` (a search's, selectors/search.py) in
    their own order, filtered; `labeled` means at least one annotation.
    `include_gold=False` (what a labeler may see) leaves the held-out gold items out."""
    ordered = items is not None
    if items is None:
        items = Item.objects.all()
    items = items.filter(project=project)
    if not include_gold:
        items = items.exclude(split=Item.Split.GOLD)
    if split:
        items = items.filter(split=split)
    if labeled is not None:
        items = items.filter(annotation_count__gt=0) if labeled else items.filter(
            annotation_count=0)
    if kind:
        items = items.filter(kind=kind)
    for key, value in (meta or {}).items():
        items = items.filter(_meta_equals(key, value))
    if created_after:
        items = items.filter(created_at__gt=created_after)
    if created_before:
        items = items.filter(created_at__lt=created_before)
    return items if ordered else items.order_by("pk")


def _meta_equals(key: str, value: str) -> Q:
    """A query string holds text; meta may hold the number 5 where the client asks for "5"."""
    match = Q(**{f"meta__{key}": value})
    try:
        number = float(value)
    except ValueError:
        return match
    return match | Q(**{f"meta__{key}": int(number) if number.is_integer() else number})


def item_detail(*, project: Project, item_id: int, viewer=None) -> tuple[
        Item, list[Annotation], Prediction | None]:
    """The item (Item.DoesNotExist if not in the project), its annotations, latest prediction.

    With a `viewer` (a labeler, not a manager) only what blind labeling allows: no gold item
    (DoesNotExist), only the viewer's own annotation, and the model's prediction only where
    the project shows suggestions to labelers."""
    items = Item.objects.filter(project=project)
    if viewer is not None:
        items = items.exclude(split=Item.Split.GOLD)
    item = items.get(pk=item_id)
    annotations = item.annotations.select_related("labeler").order_by("created_at", "pk")
    if viewer is not None:
        annotations = annotations.filter(labeler=viewer)
    prediction = None
    if viewer is None or project.show_suggestions:
        prediction = (item.predictions.select_related("model_version")
                      .order_by("-created_at", "-pk").first())
    return item, list(annotations), prediction
