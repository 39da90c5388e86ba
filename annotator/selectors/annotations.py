"""Reads for the workflow API: a project's annotations, filtered (models only, no writes)."""

from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from annotator.models import Annotation, Project

# An item's agreement state, as selectors_agreement.py counts it (two or more annotations make an
# item comparable); "adjudicated" wins, so "disagreed" means a disagreement still open.
STATES = ("agreed", "disagreed", "adjudicated", "single")


def annotations_for(*, project: Project, only_labeler=None, labeler: str = "",
                    since: datetime | None = None, until: datetime | None = None,
                    state: str = "") -> QuerySet[Annotation]:
    """The project's annotations; only_labeler (a user) narrows to theirs, labeler (a username)
    filters, since inclusive, until exclusive (as the export), state by the item's agreement."""
    rows = Annotation.objects.filter(item__project=project)
    if only_labeler is not None:
        rows = rows.filter(labeler=only_labeler)
    if labeler:
        rows = rows.filter(labeler__username=labeler)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if state:
        rows = rows.filter(_state_condition(state))
    return rows.select_related("item", "labeler", "model_version").only(
        "id", "label", "created_at", "updated_at", "seconds_spent", "picked_by", "strategy",
        "predicted_label", "predicted_confidence", "item__id", "item__external_id", "item__split",
        "labeler__username", "model_version__version",
    )


def _state_condition(state: str) -> Q:
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
    if state == "adjudicated":
        return ~Q(item__final_label="")
    if state == "single":
        return Q(item__final_label="", item__annotation_count__lt=2)
    differs = Exists(Annotation.objects.filter(item=OuterRef("item")).exclude(
        label=OuterRef("label")))
    open_pair = Q(item__final_label="", item__annotation_count__gte=2)
    return open_pair & (Q(differs) if state == "disagreed" else ~Q(differs))


def last_annotation_of(labeler, project: Project) -> Annotation | None:
    return (
        Annotation.objects.filter(labeler=labeler, item__project=project)
        .select_related("item")
        .order_by("-created_at", "-pk")
        .first()
    )


def annotations_by_item(labeler, item_ids: list[int]) -> dict[int, Annotation]:
    """`labeler`'s annotation of each of these items, by item id (the "My labels" page)."""
    return {annotation.item_id: annotation for annotation in
            Annotation.objects.filter(labeler=labeler, item_id__in=item_ids)}
