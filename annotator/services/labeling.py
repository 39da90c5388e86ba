"""Writes of the labeling flow: lease an item, submit, skip, adjudicate, overlap.

Concurrency model: an item is leased to at most one labeler at a time
(Item.leased_to / lease_expires_at). A claim is a conditional UPDATE that only
succeeds while the item is still free, so it is correct on SQLite and on
PostgreSQL; on PostgreSQL the candidate row is also picked with
SELECT ... FOR UPDATE SKIP LOCKED so concurrent labelers do not all race for the
same first row. Overlap items (required_labels > 1) are served to their
labelers one after the other, so at any moment an item is held by at most
one labeler, which is <= required_labels - annotation_count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from annotator.models import Annotation, Item, LabelFlag, Prediction, Project
from annotator.permissions import can_label, can_manage
from annotator.selectors.provenance import annotation_provenance
from annotator.selectors.queue import queue_for
from annotator.services import fast_loop

# A labeler who leaves a tab open for an hour did not spend an hour on one item.
MAX_SECONDS_PER_ITEM = 600.0


class ItemAlreadyComplete(Exception):
    """The item got all its labels from others (e.g. after this labeler's lease expired)."""


class ItemNotLeased(Exception):
    """The labeler holds no live lease on the item and has not labeled it before."""


def _free_for(labeler, now) -> Q:
    """Rows that `labeler` may claim: not leased, lease expired, or already theirs."""
    return Q(leased_to__isnull=True) | Q(lease_expires_at__lte=now) | Q(leased_to=labeler)


def item_next_claim(*, labeler, project: Project, exclude_ids: Iterable[int] = ()) -> Item | None:
    """The item `labeler` should label now, leased to them; None when nothing is left.

    The queue is selectors.queue_for (best first). An item the labeler already holds comes
    back first (a page reload is safe). One statement: the lease UPDATE picks the held item
    or the first free one and returns it.
    """
    queue = queue_for(labeler, project, exclude_ids=exclude_ids)
    # Held items are looked up by leased_to alone first: that index finds them whatever
    # the planner thinks of the queue index (usually there are none).
    mine = Item.objects.filter(leased_to=labeler, lease_expires_at__gt=timezone.now())
    held = queue.filter(pk__in=mine.values("pk")[:10])
    return item_lease_claim(
        labeler=labeler, candidates=queue, held=held, lease_seconds=project.lease_seconds
    )


def item_lease_claim(
    *, labeler, candidates: QuerySet[Item], lease_seconds: int,
    held: QuerySet[Item] | None = None,
) -> Item | None:
    """Lease the first free item of `candidates` (an ordered queryset) to `labeler`.

    `held`, if given, is tried first: items the labeler already holds (a page reload gets
    the same item back). Returns the leased item, or None when no candidate is left.

    One statement: UPDATE ... WHERE id = (the first free candidate) RETURNING the row.
    PostgreSQL locks that candidate with FOR UPDATE SKIP LOCKED, so labelers asking at
    once get different rows; SQLite runs one writer at a time. The UPDATE repeats the
    "still free" condition, so a row taken meanwhile is not taken twice.
    """
    for _attempt in range(3):
        now = timezone.now()
        item = _claim(labeler, candidates.filter(_free_for(labeler, now)), held,
                      now=now, expires=now + timedelta(seconds=lease_seconds))
        if item is not None:
            return item
        # none free, or (rarely) the row went to someone else between pick and update
        if not candidates.filter(_free_for(labeler, timezone.now())).exists():
            return None
    return None


def _claim(labeler, free: QuerySet[Item], held: QuerySet[Item] | None, *, now, expires):
    ops = connection.ops
    pick, params = free.values("pk")[:1].query.sql_with_params()
    if connection.features.has_select_for_update_skip_locked:
        pick += " FOR UPDATE SKIP LOCKED"
    pick = f"({pick})"
    if held is not None:
        held_sql, held_params = held.values("pk")[:1].query.sql_with_params()
        pick, params = f"COALESCE(({held_sql}), {pick})", (*held_params, *params)
    fields = Item._meta.concrete_fields
    table, q = ops.quote_name(Item._meta.db_table), ops.quote_name
    at = ops.adapt_datetimefield_value
    sql = (
        f"UPDATE {table} SET {q('leased_to_id')} = %s, {q('lease_expires_at')} = %s "
        f"WHERE {q('id')} = {pick} "
        f"AND {q('annotation_count')} < {q('required_labels')} "
        f"AND ({q('leased_to_id')} IS NULL OR {q('lease_expires_at')} <= %s "
        f"OR {q('leased_to_id')} = %s) "
        f"RETURNING {', '.join(q(field.column) for field in fields)}"
    )
    rows = list(Item.objects.raw(sql, [labeler.pk, at(expires), *params, at(now), labeler.pk]))
    return rows[0] if rows else None


def item_lease_release(*, labeler, item_id: int) -> None:
    Item.objects.filter(pk=item_id, leased_to=labeler).update(leased_to=None, lease_expires_at=None)


def labeler_leases_release(*, labeler, project: Project) -> int:
    """Give back every item `labeler` holds in `project` (e.g. when they leave it)."""
    return Item.objects.filter(project=project, leased_to=labeler).update(
        leased_to=None, lease_expires_at=None
    )


def _check_can_label(labeler, item: Item) -> None:
    project = item.project
    # labeler_may_label: set by selectors.item_to_submit, which checked the membership
    if not getattr(item, "labeler_may_label", False) and not can_label(labeler, project):
        raise PermissionDenied("not a member of this project")
    if project.archived_at:
        raise PermissionDenied("this project is archived: it takes no more labels")
    if item.split == Item.Split.GOLD and not project.label_gold_by_people:
        raise PermissionDenied("gold items are not labeled by people in this project")


def _validate_label(project: Project, label: str) -> None:
    if label not in project.label_names:
        raise ValidationError(f"unknown label {label!r}")


def _picked_by(item: Item) -> str:
    if item.split == Item.Split.GOLD:
        return Annotation.Picked.GOLD
    if item.required_labels > 1:
        return Annotation.Picked.OVERLAP
    if item.queue_reason in Annotation.Picked.values:
        return item.queue_reason
    return Annotation.Picked.RANDOM


def _bounded_seconds(seconds_spent: float | None) -> float | None:
    if seconds_spent is None or not math.isfinite(seconds_spent):
        return None
    return min(max(float(seconds_spent), 0.0), MAX_SECONDS_PER_ITEM)


def annotation_submit(
    *, labeler, item: Item, label: str, seconds_spent: float | None = None
) -> tuple[Annotation, bool]:
    """Record `labeler`'s label for `item`; returns (annotation, created).

    Only the item served to the labeler (leased to them, lease not expired) gets a new
    label, so nobody picks their own items and skews the active-learning record.
    Idempotent: a second submit by the same labeler creates no row and does not
    count twice; a different label on a second submit changes the label (that is
    how "go back and change my last label" works, no lease needed). Releases the lease.
    Raises ItemAlreadyComplete when the item already has all the labels it needs
    from other people, ItemNotLeased when it is not the labeler's to label.
    """
    _check_can_label(labeler, item)
    _validate_label(item.project, label)
    return _record(labeler, item, label, _bounded_seconds(seconds_spent))


def _my_annotation(labeler, item: Item) -> Annotation | None:
    # labeler_annotation_id: read with the item by selectors.item_to_submit (None: no label)
    if getattr(item, "labeler_annotation_id", 0) is None:
        return None
    return Annotation.objects.filter(item=item, labeler=labeler).first()


def _prefetched_prediction(item: Item):
    """The active prediction read with the item (selectors.item_to_submit), else `...`:
    annotation_provenance then looks it up."""
    if not hasattr(item, "prediction_label"):
        return ...
    if item.prediction_label is None:
        return None
    return Prediction(item=item, model_version_id=item.provenance_version_id,
                      label=item.prediction_label, probabilities=item.prediction_probabilities)


def _record(labeler, item: Item, label: str, seconds: float | None) -> tuple[Annotation, bool]:
    mine = _my_annotation(labeler, item)
    if mine is not None:
        if mine.label != label:
            mine.label = label
            mine.save(update_fields=["label", "updated_at"])
        item_lease_release(labeler=labeler, item_id=item.pk)
        return mine, False
    try:
        with transaction.atomic():
            # the lease check, the count and the release in one conditional UPDATE
            taken = Item.objects.filter(
                pk=item.pk, leased_to=labeler, lease_expires_at__gt=timezone.now(),
                annotation_count__lt=F("required_labels"),
            ).update(annotation_count=F("annotation_count") + 1, leased_to=None,
                     lease_expires_at=None)
            if taken == 1:
                annotation = Annotation.objects.create(
                    item=item,
                    labeler=labeler,
                    label=label,
                    seconds_spent=seconds,
                    picked_by=_picked_by(item),
                    # model version, strategy and the prediction when the item was served
                    **annotation_provenance(
                        item, prediction=_prefetched_prediction(item)),
                )
                fast_loop.label_recorded(item.project)
                return annotation, True
    except IntegrityError:
        pass  # unique (item, labeler): rolled back, the count and the lease with it
    return _not_recorded(labeler, item)


def _not_recorded(labeler, item: Item) -> tuple[Annotation, bool]:
    """Why the conditional UPDATE took nothing: a concurrent double submit of this labeler
    recorded it already, or the item is complete, or it is not leased to them."""
    mine = Annotation.objects.filter(item=item, labeler=labeler).first()
    if mine is not None:
        return mine, False
    item_lease_release(labeler=labeler, item_id=item.pk)
    if not Item.objects.filter(pk=item.pk, annotation_count__lt=F("required_labels")).exists():
        raise ItemAlreadyComplete(item.pk)
    raise ItemNotLeased(item.pk)


def item_skip(*, labeler, item_id: int) -> None:
    """Give the item back; the caller remembers not to serve it again this session."""
    item_lease_release(labeler=labeler, item_id=item_id)


def item_adjudicate(*, admin, item: Item, label: str) -> Item:
    """Record the final label of a disagreement; the labelers' annotations stay as they are."""
    if not can_manage(admin, item.project):
        raise PermissionDenied("only admins adjudicate")
    _validate_label(item.project, label)
    item.final_label = label
    item.adjudicated_by = admin
    item.adjudicated_at = timezone.now()
    with transaction.atomic():
        item.save(update_fields=["final_label", "adjudicated_by", "adjudicated_at"])
        _label_flags_resolve(item, admin)
    return item


def _label_flags_resolve(item: Item, admin) -> None:
    """The item's open suspicious-label flags: confirmed when the final label differs from
    the flagged one, kept when the admin kept it (services.label_review)."""
    open_flags = LabelFlag.objects.filter(item=item, status=LabelFlag.Status.OPEN)
    resolved = dict(final_label=item.final_label, resolved_by=admin,
                    resolved_at=item.adjudicated_at)
    open_flags.filter(given_label=item.final_label).update(status=LabelFlag.Status.KEPT, **resolved)
    open_flags.exclude(given_label=item.final_label).update(status=LabelFlag.Status.CONFIRMED,
                                                            **resolved)


def project_apply_overlap(project: Project) -> int:
    """Send project.overlap_percent % of pool items to project.overlap_labelers people.

    Deterministic: the first k% of the pool in random_key order, so raising the
    percentage only adds items. Returns how many items are overlap items.
    """
    pool = Item.objects.filter(project=project, split=Item.Split.POOL)
    labelers = max(1, project.overlap_labelers)
    count = 0
    if project.overlap_percent > 0 and labelers > 1:
        count = round(pool.count() * min(project.overlap_percent, 100) / 100)
    chosen = pool.order_by("random_key", "pk").values("pk")[:count]
    with transaction.atomic():
        pool.exclude(required_labels=1).update(required_labels=1)
        if count:
            Item.objects.filter(pk__in=chosen).update(required_labels=labelers)
    return count


def annotation_change(*, labeler, annotation: Annotation, label: str) -> Annotation:
    """`labeler` corrects one of their own earlier labels (the "My labels" page).

    No lease: the item was served to them when they first labeled it. The item's
    annotation count stays (it is still one label from them); agreement, training
    labels and the export read the annotations, so they follow. An adjudicated item
    keeps its final label: the admin decided it, and may look again.
    """
    if annotation.labeler_id != labeler.pk:
        raise PermissionDenied("only its labeler may change an annotation")
    project = annotation.item.project
    if not can_label(labeler, project):
        raise PermissionDenied("not a member of this project")
    if project.archived_at:
        raise PermissionDenied("this project is archived: its labels are final")
    _validate_label(project, label)
    if annotation.label != label:
        annotation.label = label
        annotation.save(update_fields=["label", "updated_at"])
    return annotation
