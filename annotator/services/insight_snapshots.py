"""The insight pages, served from a snapshot that a worker refreshes (stale-while-revalidate).

Computing the dashboard of a 100k-item project after a change costs seconds (labels per
day, agreement, the queue counts, five charts), and in a project being labeled every view
comes after a change. So a view never computes it when a snapshot exists:

- same data state (`selectors_insight.*_state`, a few index reads) and younger than
  LIVE_SECONDS: the snapshot is the page;
- otherwise the snapshot is served with its age, and one refresh task per page is queued
  (a lock in the cache keeps it to one at a time); the page reloads itself until the
  fresh figures are in;
- no snapshot at all (the first view, an emptied cache): computed in the request.

Snapshots live in the "insight" cache, which every process shares (files in VAR_DIR by
default, Redis where CACHE_URL names it): the worker writes, the web processes read.

A refresh reads the state before it computes, so a label that lands during the refresh
makes the next view queue another one. It draws the charts too: the next view finds them
in the chart cache. See docs/insight.md.
"""

import time

from django.core.cache import caches
from django.db.models import Count, Max
from django.utils import timezone

from annotator.lib import charts
from annotator.models import ModelVersion, Project
from annotator.queueing import enqueue
from annotator.selectors import insight as selectors_insight

PAGES = ("dashboard", "analytics")
LIVE_SECONDS = 30  # queue counts, runs and scoring move without a label: at most this old
KEEP_SECONDS = 7 * 24 * 3600
LOCK_SECONDS = 300  # a refresh that died frees its page after this
cache = caches["insight"]  # shared by the web processes and the worker (settings.CACHES)


def _key(project: Project, page: str, by: str) -> str:
    # created_at tells apart two projects that got the same id (a recreated database)
    return f"insight:snapshot:{page}:{by}:{project.pk}:{project.created_at.timestamp()}"


def _versions_state(project: Project) -> tuple:
    row = ModelVersion.objects.filter(project=project).aggregate(n=Count("pk"), last=Max("pk"))
    active = ModelVersion.objects.filter(project=project, is_active=True).values_list(
        "pk", flat=True).first()
    return row["n"], row["last"], active


def data_state(project: Project, page: str, by: str = "") -> tuple:
    versions = _versions_state(project)
    if page == "dashboard":  # labels per day end today: a new day is a new state
        return (selectors_insight.human_state(project), timezone.localdate(), versions)
    return (selectors_insight.human_state(project), selectors_insight.items_state(project),
            selectors_insight.predictions_state(versions[2]), versions, by)


def compute(project: Project, page: str, by: str = "") -> dict:
    """The page's context: its report and its charts (drawn now, so later views find them)."""
    colors = {label["name"]: label["color"] for label in project.label_set}
    if page == "dashboard":
        report = selectors_insight.project_dashboard(project)
        return {"report": report, "charts": charts.dashboard_charts(report, colors)}
    report = selectors_insight.sentiment_analytics(project, by=by)
    return {"report": report,
            "label_chart": charts.breakdown_chart(report["labels"], colors=colors),
            "prediction_chart": charts.breakdown_chart(report["predictions"], colors=colors)}


def _store(key: str, state: tuple, context: dict) -> dict:
    cache.set(key, {"state": state, "at": time.time(), "context": context}, KEEP_SECONDS)
    return context


def snapshot_refresh(*, project_id: int, page: str, by: str = "") -> dict:
    """Recompute one page's snapshot (the refresh task's body); idempotent."""
    project = Project.objects.get(pk=project_id)
    if page == "analytics":
        selectors_insight.parse_grouping(by)
    key = _key(project, page, by)
    try:
        _store(key, data_state(project, page, by), compute(project, page, by))
    finally:
        cache.delete(key + ":refreshing")
    return {"project": project_id, "page": page, "by": by}


def _queue_refresh(project: Project, page: str, by: str) -> None:
    if cache.add(_key(project, page, by) + ":refreshing", 1, LOCK_SECONDS):  # else on its way
        enqueue("annotator.tasks.refresh_insight_task", project.pk, page, by)


def page_context(project: Project, page: str, by: str = "") -> dict:
    """What a view renders: the page's context plus `snapshot` (its age, whether a
    refresh is on its way). Raises ValueError for an unknown grouping."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}")
    if page == "analytics":
        selectors_insight.parse_grouping(by)
    key = _key(project, page, by)
    state = data_state(project, page, by)
    entry = cache.get(key)
    if entry is None:
        context = _store(key, state, compute(project, page, by))
        return {**context, "snapshot": {"age_seconds": 0.0, "refreshing": False}}
    age = time.time() - entry["at"]
    refreshing = entry["state"] != state or age > LIVE_SECONDS
    if refreshing:
        _queue_refresh(project, page, by)
    return {**entry["context"], "snapshot": {"age_seconds": age, "refreshing": refreshing}}
