"""Work that failed in a worker, where the project's managers look.

Every task that raises in a worker is recorded by a `task_failure` signal handler
(annotator/celery.py) as one plain sentence on its project: what was being done, and the kind
of cause, never the exception's text (it may carry server paths) nor the traceback (the
worker's log has both). The project's pages show the open ones to its managers
(annotator/views/context_processors.py) until one dismisses them. Training runs are not recorded
here: their failures are on the runs table already.
"""

import logging

from django.utils import timezone

from annotator.models import Alert, BackgroundFailure, ImportJob, ModelVersion, Project

logger = logging.getLogger(__name__)

# what each task was doing, and how its first argument names the project
WORK = {
    "annotator.tasks.import_file_task": ("importing a file", "import_job"),
    "annotator.tasks.score_pool_task": ("scoring the pool with {version}", "version"),
    "annotator.tasks.score_chunk_task": ("scoring the pool with {version}", "version"),
    "annotator.tasks.rank_pool_task": ("ranking the queue with {version}", "version"),
    "annotator.tasks.find_label_issues_task": ("the label review of {version}", "version"),
    "annotator.tasks.distill_version_task": ("distilling {version}", "version"),
    "annotator.tasks.seed_pool_task": ("choosing the first items to label", "project"),
    "annotator.tasks.embed_pool_task": ("embedding new items for the fast loop", "project"),
    "annotator.tasks.embed_chunk_task": ("embedding new items for the fast loop", "project"),
    "annotator.tasks.head_rerank_task": ("re-ranking the queue after new labels", "project"),
    "annotator.tasks.vocabulary_check_task": ("the readability check", "project"),
    "annotator.tasks.predict_items_task": ("predicting pushed items", "project"),
    "annotator.tasks.refresh_insight_task": ("refreshing a dashboard", "project"),
    "annotator.tasks.deliver_webhook_task": ("delivering an alert to its webhook", "alert"),
}
KEEP = 20  # open failures kept per project: a task failing in a loop does not fill the table


def plain_cause(exc: BaseException) -> str:
    """The kind of cause, in words a user can act on; no message text, no path."""
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or "OutOfMemory" in name or "out of memory" in str(exc):
        return "the worker ran out of memory"
    if isinstance(exc, OSError):
        return "a file could not be read or written"
    return f"an unexpected error ({name})"


def failure_record(*, task: str, args: list | tuple, exc: BaseException) -> BackgroundFailure | None:
    """Record that `task` (called with `args`) raised `exc`; None for a task not listed in
    WORK or whose project is gone."""
    if task not in WORK or not args:
        return None
    doing, names = WORK[task]
    project_id, version = _project_of(names, args[0])
    if project_id is None or not Project.objects.filter(pk=project_id).exists():
        return None
    text = (f"{doing.format(version=version)[:1].upper()}{doing.format(version=version)[1:]} "
            f"failed: {plain_cause(exc)}. The details are in the worker's log.")
    failure = BackgroundFailure.objects.create(project_id=project_id, task=task, text=text[:300])
    stale = (BackgroundFailure.objects.filter(project_id=project_id, dismissed_at__isnull=True)
             .order_by("-created_at", "-pk").values_list("pk", flat=True)[KEEP:])
    BackgroundFailure.objects.filter(pk__in=list(stale)).update(dismissed_at=timezone.now())
    return failure


def _project_of(names: str, ref) -> tuple[int | None, str]:
    if names == "project":
        return ref, ""
    if names == "version":
        found = ModelVersion.objects.filter(pk=ref).values_list("project_id", "version").first()
        return (found[0], f"v{found[1]}") if found else (None, "")
    model = ImportJob if names == "import_job" else Alert
    return model.objects.filter(pk=ref).values_list("project_id", flat=True).first(), ""


def failures_open(project: Project) -> list[BackgroundFailure]:
    return list(BackgroundFailure.objects.filter(project=project, dismissed_at__isnull=True)
                .order_by("-created_at", "-pk")[:KEEP])


def failures_dismiss(*, project: Project) -> int:
    """Dismiss every open failure of the project; how many."""
    return BackgroundFailure.objects.filter(project=project, dismissed_at__isnull=True).update(
        dismissed_at=timezone.now())
