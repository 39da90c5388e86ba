"""Which item a labeler is given next: the items they may label, best first (handing
the next item out leases it, so that is a service: services.labeling.item_next_claim), and
the model's suggestion shown beside it."""

from collections.abc import Iterable

from django.db.models import Exists, F, JSONField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from annotator.models import Annotation, Item, Membership, ModelVersion, Project


def labelable_items(project: Project) -> QuerySet[Item]:
    """Items people label in this project: the pool, plus gold when the admin asked for it."""
    splits = [Item.Split.POOL]
    if project.label_gold_by_people:
        splits.append(Item.Split.GOLD)
    return Item.objects.filter(project=project, split__in=splits)


def queue_for(labeler, project: Project, *, exclude_ids: Iterable[int] = ()) -> QuerySet[Item]:
    """Items `labeler` may still be given, best first.

    This ordering is the one place the active-learning ranker changes: highest
    priority first, then the fixed random order (cold start: priority is empty).
    """
    already_labeled = Annotation.objects.filter(item=OuterRef("pk"), labeler=labeler)
    return (
        labelable_items(project)
        .filter(annotation_count__lt=F("required_labels"))
        .exclude(pk__in=list(exclude_ids))
        .exclude(Exists(already_labeled))
        .order_by(F("priority").desc(nulls_last=True), "random_key", "pk")
    )


def item_to_submit(labeler, *, project_id: int, item_id: int | None) -> Item | None:
    """The item `labeler` submits a label for, with its project, in one query; None if
    there is no such item in that project or the project is not theirs (staff: any).

    The item carries what annotation_submit would otherwise look up one by one:
    labeler_may_label (True), labeler_annotation_id (their earlier label, None if none),
    and the active model's prediction (provenance_version_id, prediction_label,
    prediction_probabilities; prediction_label None if none).
    """
    from annotator.models import Prediction

    if item_id is None:
        return None
    items = Item.objects.select_related("project").filter(pk=item_id, project_id=project_id)
    if not labeler.is_staff:
        items = items.filter(
            Exists(Membership.objects.filter(project=OuterRef("project_id"), user=labeler))
        )
    active = ModelVersion.objects.filter(project=OuterRef("project_id"), is_active=True)
    items = items.annotate(
        labeler_annotation_id=Subquery(
            Annotation.objects.filter(item=OuterRef("pk"), labeler=labeler).values("pk")[:1]
        ),
        provenance_version_id=Coalesce(
            "scored_version_id", Subquery(active.order_by("-version").values("pk")[:1])
        ),
    )
    prediction = Prediction.objects.filter(
        item=OuterRef("pk"), model_version_id=OuterRef("provenance_version_id")
    ).order_by("pk")
    items = items.annotate(
        prediction_label=Subquery(prediction.values("label")[:1]),
        prediction_probabilities=Subquery(
            prediction.values("probabilities")[:1], output_field=JSONField()
        ),
    )
    item = items.first()
    if item is not None:
        item.labeler_may_label = True
    return item


def suggestion_for(item: Item) -> tuple[str, float] | None:
    """(label, confidence) of the model that ranked `item` (the fast loop's head, refit every
    few labels, else the active version), only if the project shows suggestions.

    Off by default (Project.show_suggestions): a visible suggestion anchors labelers. Never
    on a gold item: the model's guess there would anchor the held-out labels it is judged by.
    While no version is active and no head suggested, the page asks
    services/zero_shot.zero_shot_suggestion instead (the label descriptions', marked so).
    """
    from annotator.models import Prediction

    if not item.project.show_suggestions or item.split == Item.Split.GOLD:
        return None
    if item.ranked_by_head_id and item.head_label:
        return item.head_label, float(item.head_confidence or 0.0)
    prediction = (
        Prediction.objects.filter(item=item, model_version__is_active=True)
        .values_list("label", "probabilities")
        .first()
    )
    if prediction is None:
        return None
    label, probabilities = prediction
    return label, float(max(probabilities))
