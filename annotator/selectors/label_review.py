"""Reads of the suspicious-label review: the queue of open flags and the report per labeler."""

from collections import defaultdict

from django.contrib.auth import get_user_model
from django.db.models import Count

from annotator.models import Annotation, Item, LabelFlag, ModelVersion, Project


def label_review_queue(project: Project, *, limit: int = 100) -> list[dict]:
    """Open flags, most suspicious first, each with its item and who gave which label."""
    flags = list(LabelFlag.objects.filter(project=project, status=LabelFlag.Status.OPEN)
                 .select_related("item", "model_version").order_by("rank", "pk")[:limit])
    votes = defaultdict(list)
    for item_id, name, label in (Annotation.objects.filter(item__in=[f.item_id for f in flags])
                                 .order_by("created_at")
                                 .values_list("item_id", "labeler__username", "label")):
        votes[item_id].append((name, label))
    return [{"flag": flag, "item": flag.item, "votes": votes[flag.item_id]} for flag in flags]


def label_review_report(project: Project) -> dict:
    """The latest check, counts by status, and per labeler: labels given, how many of them
    were flagged, and how many of those adjudication confirmed (changed) or kept."""
    flags = LabelFlag.objects.filter(project=project)
    counts = dict(flags.order_by().values_list("status").annotate(n=Count("pk")))
    checked = (ModelVersion.objects.filter(project=project, label_flags__isnull=False)
               .order_by("-version").first())
    latest = None
    if checked:
        latest = {"version": checked, "labels": checked.label_count,
                  "flagged": flags.filter(model_version=checked).count()}

    # per labeler: an annotation counts once, through the latest flag of its item
    latest_flag = {}
    for item_id, given, status, final in (flags.exclude(status=LabelFlag.Status.SUPERSEDED)
                                          .order_by("created_at", "pk")
                                          .values_list("item_id", "given_label", "status",
                                                       "final_label")):
        latest_flag[item_id] = (given, status, final)
    given_total = dict(Annotation.objects.filter(item__project=project,
                                                 item__split=Item.Split.POOL)
                       .order_by().values_list("labeler_id").annotate(n=Count("pk")))
    rows = defaultdict(lambda: {"flagged": 0, "confirmed": 0, "kept": 0, "open": 0})
    for labeler_id, item_id, label in (Annotation.objects.filter(item_id__in=latest_flag)
                                       .values_list("labeler_id", "item_id", "label")):
        given, status, final = latest_flag[item_id]
        if label != given:  # this labeler did not give the flagged label
            continue
        row = rows[labeler_id]
        row["flagged"] += 1
        if status == LabelFlag.Status.OPEN:
            row["open"] += 1
        elif final != label:
            row["confirmed"] += 1
        else:
            row["kept"] += 1
    names = dict(get_user_model().objects.filter(pk__in=given_total).values_list("pk", "username"))
    labelers = [
        {"name": names.get(labeler_id, str(labeler_id)), "labels": total, **rows[labeler_id]}
        for labeler_id, total in given_total.items()
    ]
    labelers.sort(key=lambda r: (-r["confirmed"], -r["flagged"], r["name"]))
    return {"latest": latest, "open": counts.get(LabelFlag.Status.OPEN, 0),
            "confirmed": counts.get(LabelFlag.Status.CONFIRMED, 0),
            "kept": counts.get(LabelFlag.Status.KEPT, 0),
            "labelers": labelers}
