"""Reads for the insight pages: the project dashboard and the sentiment analytics.

Every figure is an aggregate query (GROUP BY in the database); Python only loops over
grouped rows, the model versions, the last training runs, and, for the consensus of
human labels, over the annotations (human work, not the pool).

The slow figures (those that read every annotation or every item) are cached, keyed by
the state they are computed from (`human_state`, `items_state`, `predictions_state`):
a few index reads that change whenever a label is added, changed or deleted, an item is
adjudicated, imported or deleted, or the active version writes predictions. A new label
thus gives a new key, and the next view computes afresh: nothing has to be invalidated.
CACHE_SECONDS bounds what the key cannot see (a renamed labeler). The queue, the
versions and the runs are read live on every view: they are cheap, and leases and
rankings change without a new label. See docs/insight.md.
"""

import hashlib
import re
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta

from django.core.cache import cache
from django.db.models import Avg, Count, F, Max, Min, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from annotator.models import (
    Annotation,
    ImportJob,
    Item,
    ModelVersion,
    Prediction,
    Project,
    TrainingRun,
)
from annotator.selectors.agreement import project_agreement
from annotator.selectors.training import stale_ranked_count
from trainer.agreement import consensus

DAYS = 90  # labels-over-time window on the dashboard
RUNS = 20  # training runs listed on the dashboard
FIELD_RE = re.compile(r"[A-Za-z0-9_]{1,50}")  # whole string: fullmatch ($ allows a final \n)
SOURCES = ("labels", "predictions")
NONE_GROUP = "(none)"
CACHE_SECONDS = 600  # backstop: what the state keys cannot see is at most this old
_MISSING = object()


# --- the cache: keyed by the data state, so a change gives a new key ----------------------


def _cached(name: str, state: tuple, compute):
    """compute() once per (name, state); later calls with the same state read the cache."""
    digest = hashlib.sha256(repr((name, state)).encode()).hexdigest()
    key = f"insight:{name}:{digest}"
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def _project_state(project: Project) -> tuple:
    # created_at tells apart two projects that got the same id (a recreated database)
    return (project.pk, project.created_at, tuple(project.label_names))


def human_state(project: Project) -> tuple:
    """Changes with every label added, changed (updated_at) or deleted, and every adjudication.

    The annotations part is over all projects: read from the primary key and one column, no
    join with the project's 100k items (which costs more than the cache saves on SQLite).
    """
    annotations = Annotation.objects.aggregate(
        n=Count("pk"), last=Max("pk"), changed=Max("updated_at")
    )
    adjudicated = Item.with_staged.filter(project=project).aggregate(last=Max("adjudicated_at"))
    return (*_project_state(project), annotations["n"], annotations["last"],
            annotations["changed"], adjudicated["last"])


def items_state(project: Project) -> tuple:
    """Changes when items are imported, deleted, or an import publishes its staged rows."""
    items = Item.with_staged.filter(project=project).aggregate(n=Count("pk"), last=Max("pk"))
    imports = ImportJob.objects.filter(project=project).aggregate(
        n=Count("pk"), finished=Max("finished_at")
    )
    return (*_project_state(project), items["n"], items["last"], imports["n"],
            imports["finished"])


def predictions_state(version_id: int | None) -> tuple:
    """Predictions are only ever added (bulk_create, ignore_conflicts) or deleted."""
    if version_id is None:
        return (None,)
    row = Prediction.objects.filter(model_version_id=version_id).aggregate(
        n=Count("pk"), last=Max("pk")
    )
    return (version_id, row["n"], row["last"])


def _labels_with_extras(project: Project, seen) -> list[str]:
    names = list(project.label_names)
    return names + sorted({str(label) for label in seen} - set(names))


def _seconds(start, end) -> float | None:
    return (end - start).total_seconds() if start and end else None


# --- dashboard -----------------------------------------------------------------------


def _labels_over_time(project: Project, now) -> dict:
    today = timezone.localdate(now)
    since = today - timedelta(days=DAYS - 1)
    start = timezone.make_aware(datetime.combine(since, time.min))
    rows = (
        Annotation.objects.filter(item__project=project, created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "label")
        .annotate(n=Count("pk"))
        .order_by("day")
    )
    counts = {(row["day"], row["label"]): row["n"] for row in rows}
    labels = _labels_with_extras(project, {label for _, label in counts})
    days = sorted({day for day, _ in counts})
    if days:  # every day from the first with labels to today, zeros included
        days = [days[0] + timedelta(days=i) for i in range((today - days[0]).days + 1)]
    return {
        "days": days,
        "labels": labels,
        "series": {label: [counts.get((day, label), 0) for day in days] for label in labels},
    }


def _labelers(project: Project) -> dict:
    annotations = Annotation.objects.filter(item__project=project)
    by_label = annotations.values("labeler__username", "label").annotate(n=Count("pk"))
    people = (
        annotations.values("labeler__username")
        .annotate(n=Count("pk"), seconds=Avg("seconds_spent"), last=Max("created_at"))
        .order_by("-n", "labeler__username")
    )
    counts = {(row["labeler__username"], row["label"]): row["n"] for row in by_label}
    labels = _labels_with_extras(project, {label for _, label in counts})
    rows = [
        {
            "username": p["labeler__username"],
            "count": p["n"],
            "avg_seconds": p["seconds"],
            "last": p["last"],
            "by_label": [counts.get((p["labeler__username"], label), 0) for label in labels],
        }
        for p in people
    ]
    distribution = [sum(row["by_label"][i] for row in rows) for i in range(len(labels))]
    return {"labels": labels, "rows": rows, "distribution": distribution,
            "total": sum(distribution)}


def _versions(project: Project, now) -> list[dict]:
    scored = {
        row["model_version"]: row
        for row in Prediction.objects.filter(model_version__project=project)
        .values("model_version")
        .annotate(n=Count("pk"), first=Min("created_at"), last=Max("created_at"))
    }
    versions = []
    for v in ModelVersion.objects.filter(project=project).order_by("version"):
        metrics = v.metrics or {}
        predictions = scored.get(v.pk, {})
        versions.append({
            "id": v.pk,
            "version": v.version,
            "is_active": v.is_active,
            "label_count": v.label_count,
            "macro_f1": metrics.get("macro_f1"),
            "accuracy": metrics.get("accuracy"),
            "evaluated_on": metrics.get("evaluated_on", ""),
            "support": metrics.get("support"),
            "duration_seconds": v.duration_seconds,
            "device": v.device,
            "created_at": v.created_at,
            "predictions": predictions.get("n", 0),
            "scored_at": predictions.get("last"),
            # activation -> predictions written: queue wait + model load + predicting
            "scoring_delay_seconds": _seconds(v.created_at, predictions.get("last")),
            "metrics": metrics,
        })
    return versions


def _per_class(metrics: dict) -> list[dict]:
    """Rows in the label order of the metrics (jsonb on PostgreSQL does not keep key order)."""
    per_class = metrics.get("per_class") or {}
    order = [name for name in metrics.get("labels") or [] if name in per_class]
    order += sorted(set(per_class) - set(order))
    return [{"label": name, **per_class[name]} for name in order]


def _queue(project: Project, active: dict | None, now) -> dict:
    items = Item.objects.filter(project=project)
    is_pool = Q(split=Item.Split.POOL)
    is_open = is_pool & Q(annotation_count__lt=F("required_labels"))
    counts = items.aggregate(
        pool=Count("pk", filter=is_pool),
        open=Count("pk", filter=is_open),
        labeled=Count("pk", filter=is_pool & Q(annotation_count__gt=0)),
        done=Count("pk", filter=is_pool & Q(annotation_count__gte=F("required_labels"))),
        gold=Count("pk", filter=Q(split=Item.Split.GOLD)),
        leased=Count("pk", filter=Q(lease_expires_at__gt=now)),
        ranked=Count("pk", filter=Q(priority__isnull=False)),
    )
    counts["stale_ranked"] = stale_ranked_count(project)
    counts["open_predicted"] = counts["ranked_by_active"] = 0
    counts["newest_prediction_age_seconds"] = counts["labels_since_active"] = None
    if active:
        counts["ranked_by_active"] = items.filter(
            priority__isnull=False, scored_version_id=active["id"]
        ).count()
        # from the version's predictions (thousands) to their items, not the other way round
        counts["open_predicted"] = Prediction.objects.filter(
            model_version_id=active["id"], item__project=project, item__split=Item.Split.POOL,
            item__annotation_count__lt=F("item__required_labels"),
        ).count()
        counts["newest_prediction_age_seconds"] = _seconds(active["scored_at"], now)
        counts["labels_since_active"] = Annotation.objects.filter(
            item__project=project, created_at__gt=active["created_at"]
        ).count()
    counts["open_predicted_share"] = (
        counts["open_predicted"] / counts["open"] if counts["open"] else None
    )
    return counts


def _runs(project: Project) -> dict:
    runs = (
        TrainingRun.objects.filter(project=project)
        .order_by("-created_at")
        .values("id", "status", "trigger", "created_at", "started_at", "finished_at",
                "attempts", "error", "model_version__version")[:RUNS]
    )
    rows = [
        {**run,
         "wait_seconds": _seconds(run["created_at"], run["started_at"]),
         "duration_seconds": _seconds(run["started_at"], run["finished_at"])}
        for run in runs
    ]
    by_status = dict(
        TrainingRun.objects.filter(project=project)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {"rows": rows, "by_status": by_status}


def _agreement(project: Project) -> dict:
    report = project_agreement(project, max_disagreements=0)
    return {key: report[key] for key in ("items", "labelers", "alpha", "disagreement_count")} | {
        "pairs": [{k: v for k, v in pair.items() if k != "matrix"} for pair in report["pairs"]]
    }


def _human_work(project: Project, now) -> dict:
    """The figures that read every annotation: labels per day, per labeler, agreement."""
    return {
        "over_time": _labels_over_time(project, now),
        "labelers": _labelers(project),
        "agreement": _agreement(project),
    }


def project_dashboard(project: Project, *, cached: bool = True) -> dict:
    """Everything the admin dashboard shows, as plain data (charts are drawn from it).

    cached=False computes every figure afresh (the cache's tests compare the two).
    """
    now = timezone.now()
    versions = _versions(project, now)
    active = next((v for v in versions if v["is_active"]), None)
    if cached:  # labels per day end today: a new day is a new key
        human = _cached("dashboard", (human_state(project), timezone.localdate(now)),
                        lambda: _human_work(project, now))
    else:
        human = _human_work(project, now)
    return {
        **human,
        "versions": versions,
        "active": active,
        "per_class": _per_class(active["metrics"]) if active else [],
        "queue": _queue(project, active, now),
        "runs": _runs(project),
        "days": DAYS,
    }


# --- sentiment analytics ---------------------------------------------------------------


def parse_grouping(by: str) -> tuple[str, str]:
    """("kind", ""), ("week", "") or ("meta", field); ValueError for anything else."""
    if by in ("kind", "week"):
        return by, ""
    kind, _, field = by.partition(":")
    if kind == "meta" and FIELD_RE.fullmatch(field):
        return "meta", field
    raise ValueError(
        "by must be 'kind', 'week' or 'meta:<field>' with a field of 1-50 letters, digits or _"
    )


def _group_expression(by: str, prefix: str = ""):
    kind, field = parse_grouping(by)
    if kind == "kind":
        return F(f"{prefix}kind")
    if kind == "week":
        return TruncWeek(f"{prefix}created_at")
    return KeyTextTransform(field, f"{prefix}meta")


def _group_name(value) -> str:
    if value is None or value == "":
        return NONE_GROUP
    if hasattr(value, "date"):  # a week start
        return value.date().isoformat()
    return str(value)


def _label_counts(project: Project, by: str) -> Counter:
    """(group, label) -> items, the label being each item's consensus of human labels."""
    rows = (
        Annotation.objects.filter(item__project=project)
        .annotate(group=_group_expression(by, "item__"))
        .order_by("item_id")
        .values_list("item_id", "item__final_label", "group", "label")
    )
    votes: dict[int, list] = defaultdict(list)
    info: dict[int, tuple] = {}
    for item_id, final_label, group, label in rows.iterator(chunk_size=5000):
        votes[item_id].append(label)
        info[item_id] = (final_label, group)
    counts: Counter = Counter()
    for item_id, labels in votes.items():
        final_label, group = info[item_id]
        label = consensus(final_label, labels)
        if label:
            counts[(_group_name(group), label)] += 1
    return counts


def _prediction_counts(version_id: int | None, by: str) -> Counter:
    if version_id is None:
        return Counter()
    rows = (
        Prediction.objects.filter(model_version_id=version_id)
        .annotate(group=_group_expression(by, "item__"))
        .values("group", "label")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: Counter = Counter()
    for row in rows:
        counts[(_group_name(row["group"]), row["label"])] += row["n"]
    return counts


def _item_groups(project: Project, by: str) -> dict:
    """Items per group (every item of the project is read), and the pool's size."""
    items = Counter()
    for row in (
        Item.objects.filter(project=project)
        .annotate(group=_group_expression(by))
        .values("group")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        items[_group_name(row["group"])] += row["n"]
    pool = Item.objects.filter(project=project, split=Item.Split.POOL).count()
    return {"items": items, "pool": pool}


def sentiment_breakdown(project: Project, *, source: str, by: str, cached: bool = True) -> dict:
    """Share of each label per group, from human labels or the active model's predictions.

    Groups: text kind, week the item was imported, or a meta field. Rows are sorted by
    size (weeks: by date); `items` is how many items of the project the group holds, so
    `total / items` is the coverage of the source in that group.
    """
    if source not in SOURCES:
        raise ValueError("source must be 'labels' or 'predictions'")
    parse_grouping(by)
    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    version_id = active.pk if active else None
    if source == "labels":
        state = (human_state(project), by) if cached else None
        compute = lambda: _label_counts(project, by)  # noqa: E731
    else:
        state = (predictions_state(version_id), by) if cached else None
        compute = lambda: _prediction_counts(version_id, by)  # noqa: E731
    counts = _cached(f"analytics-{source}", state, compute) if cached else compute()
    if cached:
        grouped = _cached("analytics-items", (items_state(project), by),
                          lambda: _item_groups(project, by))
    else:
        grouped = _item_groups(project, by)
    items = grouped["items"]

    labels = _labels_with_extras(project, {label for _, label in counts})
    groups = {group for group, _ in counts}
    rows = []
    for group in groups:
        row_counts = [counts.get((group, label), 0) for label in labels]
        total = sum(row_counts)
        rows.append({
            "group": group,
            "items": items.get(group, 0),
            "total": total,
            "counts": row_counts,
            "shares": [c / total for c in row_counts],
        })
    if by == "week":
        rows.sort(key=lambda r: r["group"])
    else:
        rows.sort(key=lambda r: (-r["total"], r["group"]))
    total = sum(r["total"] for r in rows)
    return {
        "source": source,
        "by": by,
        "labels": labels,
        "rows": rows,
        "total": total,
        "items": sum(items.values()),
        "pool": grouped["pool"],
        "version": active.version if active else None,
        "overall": [sum(r["counts"][i] for r in rows) for i in range(len(labels))],
    }


def meta_fields(project: Project, *, sample: int = 200) -> list[str]:
    """Meta keys seen on a sample of the project's items (offered as groupings)."""
    keys = set()
    for meta in Item.objects.filter(project=project).values_list("meta", flat=True)[:sample]:
        if isinstance(meta, dict):
            keys.update(key for key in meta if FIELD_RE.fullmatch(key))
    return sorted(keys)


def sentiment_analytics(project: Project, *, by: str, cached: bool = True) -> dict:
    """Both sources for one grouping, plus the meta fields to offer."""
    return {
        "by": by,
        "labels": sentiment_breakdown(project, source="labels", by=by, cached=cached),
        "predictions": sentiment_breakdown(project, source="predictions", by=by,
                                           cached=cached),
        "meta_fields": meta_fields(project),
    }
