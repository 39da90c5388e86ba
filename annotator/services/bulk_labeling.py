"""Label many items at once from a search, a "more like this" or a group of near-duplicates,
and undo it as one action (docs/search.md).

Each bulk label is an ordinary annotation of the person who gave it, with provenance
`picked_by="bulk"` and a link to the BulkLabeling that records the query that chose the items.
So overlap, agreement and training see it as that person's label. Items it must not touch are
skipped and counted by reason: gold items (never bulk-labeled), items leased to someone else
right now, items that already have every label they need, items this person labeled already
(their label stands: a bulk action never overwrites one), items not in the project. Undo
deletes exactly the annotations the action created and gives their items their count back.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotator.models import Annotation, BulkLabeling, Item, Project
from annotator.permissions import can_label, can_manage
from annotator.services import fast_loop

SKIP_REASONS = {
    "gold": "gold items are never bulk-labeled",
    "leased": "being labeled by someone else right now",
    "complete": "already have every label they need",
    "yours": "you labeled them already (your label stands)",
    "missing": "not items of this project",
}


class BulkRefused(ValueError):
    """The request cannot be carried out; the message says why (nothing was written)."""


def may_bulk_label(user, project: Project) -> bool:
    return can_manage(user, project) or (project.bulk_labeling_by_labelers
                                         and can_label(user, project))


def _why_skipped(row: dict, *, user, now, mine: set[int]) -> str | None:
    if row["split"] != Item.Split.POOL:
        return "gold"
    if row["pk"] in mine:
        return "yours"
    if (row["leased_to_id"] not in (None, user.pk) and row["lease_expires_at"]
            and row["lease_expires_at"] > now):
        return "leased"
    if row["annotation_count"] >= row["required_labels"]:
        return "complete"
    return None


def bulk_label(*, user, project: Project, item_ids: list[int], label: str,
               query: dict | None = None) -> tuple[BulkLabeling, dict[str, list[int]]]:
    """Give `label` to the items of `item_ids` that may take it; (the action, skipped ids by
    reason). Raises PermissionDenied, or BulkRefused for a bad label or selection."""
    if not may_bulk_label(user, project):
        raise PermissionDenied("only the project's admins may label items in bulk here")
    if label not in project.label_names:
        raise BulkRefused(f"{label!r} is not a label of this project "
                          f"({', '.join(project.label_names)})")
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    if not ids:
        raise BulkRefused("select at least one item")
    if len(ids) > settings.BULK_LABEL_MAX_ITEMS:
        raise BulkRefused(f"at most {settings.BULK_LABEL_MAX_ITEMS:,} items at once "
                          f"(this selection has {len(ids):,})")
    skipped: dict[str, list[int]] = {reason: [] for reason in SKIP_REASONS}
    with transaction.atomic():
        rows = Item.objects.filter(project=project, pk__in=ids)
        if connection.features.has_select_for_update:  # SQLite: IMMEDIATE holds the lock
            rows = rows.select_for_update()
        found = {row["pk"]: row for row in rows.values(
            "pk", "split", "leased_to_id", "lease_expires_at", "annotation_count",
            "required_labels")}
        mine = set(Annotation.objects.filter(item_id__in=list(found), labeler=user)
                   .values_list("item_id", flat=True))
        now, eligible = timezone.now(), []
        for item_id in ids:
            reason = ("missing" if item_id not in found else
                      _why_skipped(found[item_id], user=user, now=now, mine=mine))
            (skipped[reason] if reason else eligible).append(item_id)
        bulk = BulkLabeling.objects.create(
            project=project, user=user, label=label, query=query or {}, labeled=len(eligible),
            skipped={reason: len(found_ids) for reason, found_ids in skipped.items() if found_ids})
        # leases stay as they are (one's own lease runs out): undo gives the exact state back
        Item.objects.filter(pk__in=eligible).update(annotation_count=F("annotation_count") + 1)
        Annotation.objects.bulk_create(
            [Annotation(item_id=item_id, labeler=user, label=label,
                        picked_by=Annotation.Picked.BULK, bulk_labeling=bulk)
             for item_id in eligible], batch_size=500)
    if eligible:
        fast_loop.label_recorded(project)
    return bulk, {reason: found_ids for reason, found_ids in skipped.items() if found_ids}


def bulk_label_undo(*, user, bulk: BulkLabeling) -> int:
    """Remove the annotations `bulk` made (their items get their count back); the number
    removed. A second undo removes nothing."""
    if bulk.user_id != user.pk and not can_manage(user, bulk.project):
        raise PermissionDenied("only the person who gave these labels, or a project admin, "
                               "may undo them")
    with transaction.atomic():
        locked = BulkLabeling.objects.filter(pk=bulk.pk)
        if connection.features.has_select_for_update:
            locked = locked.select_for_update()
        bulk = locked.get()
        if bulk.undone_at is not None:
            return 0
        made = Annotation.objects.filter(bulk_labeling=bulk)
        item_ids = list(made.values_list("item_id", flat=True))
        made.delete()
        Item.objects.filter(pk__in=item_ids, annotation_count__gt=0).update(
            annotation_count=F("annotation_count") - 1)
        bulk.undone_at = timezone.now()
        bulk.save(update_fields=["undone_at"])
    if item_ids:
        fast_loop.label_recorded(bulk.project)
    return len(item_ids)
