"""Training runs: request, claim and execute, version and activate models.

The path of a retrain: `training_request` (one queued run per project, enforced by a
partial unique constraint) -> after commit `train_project_task.delay(run_id)` ->
`training_run_execute` claims the run with a conditional UPDATE, snapshots the labels,
fine-tunes with `trainer.train`, copies the folder into the "artifacts" storage (one
folder per attempt), compares the new version with the active one on the same items
(services.activation) and stores it in one transaction, active unless it is worse beyond
noise. A background thread keeps the heartbeat fresh while it works. A failed or killed run
never touches the active model; a run whose heartbeat stopped is reclaimed (retried) or
marked failed. A request without labels of two classes is refused before any run exists.
"""

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from annotator.ml.artifacts import model_version_local_path, model_version_store
from annotator.models import Annotation, Item, ModelVersion, Project, TrainingRun
from annotator.queueing import enqueue, enqueue_on_commit
from annotator.selectors.readability import readability_blocks_schedule
from annotator.selectors.training import (
    gold_labels,
    latest_version_if_nothing_new,
    training_label_counts,
    training_labels,
)
from annotator.services.activation import activation_decide
from annotator.services.background_failures import plain_cause

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
ACTIVE = [TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]


class RunLost(Exception):
    """Another worker reclaimed the run, or it was marked failed, while we trained."""


class TooFewClasses(ValueError):
    """A model needs training labels of at least two classes; the message says what there is."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        if not counts:
            has = "it has 0"
        elif len(counts) == 1:
            (name, count), = counts.items()
            has = f"it has only '{name}' ({count} label{'s' if count != 1 else ''})"
        else:
            has = "it has " + ", ".join(f"'{name}' {count}" for name, count in counts.items())
        super().__init__(f"training needs labels of at least two classes; {has}")


class NothingNewToLearn(Exception):
    """No label was added, changed or adjudicated since the newest version was trained."""

    def __init__(self, version: ModelVersion):
        self.version = version
        super().__init__(f"no label was added, changed or adjudicated since v{version.version} "
                         "was trained")


# --- reads used here ------------------------------------------------------------


def _config(project: Project, warm_start_from: str | None):
    from trainer.config import TrainConfig

    config = TrainConfig(
        model_name=project.effective_model_name,
        max_length=project.max_length or None,  # None: fitted to the labeled texts
        epochs=project.epochs,
        device=settings.TRAINING_DEVICE,
        warm_start_from=warm_start_from,
    )
    # Deployment or test overrides, e.g. {"max_steps": 4, "num_threads": 2}
    for key, value in settings.TRAINING_OVERRIDES.items():
        setattr(config, key, value)
    return config


# --- writes ----------------------------------------------------------------------


def training_request(
    *, project: Project, trigger: str, user=None, enqueue: bool = True, force: bool = False
) -> TrainingRun | None:
    """Queue a training run, or return the project's queued/running one.

    Raises TooFewClasses (even with `force`) when the labels are of fewer than two classes,
    and NothingNewToLearn when the newest version, active or not, was trained on the labels
    as they are now (it would make the same model again), unless `force`.

    A second concurrent request hits the partial unique constraint and gets the
    existing run; if that run's worker died (stale heartbeat) it is enqueued again, so
    the new worker reclaims it. The task is enqueued only after the transaction commits.
    """
    if not TrainingRun.objects.filter(project=project, status__in=ACTIVE).exists():
        counts = training_label_counts(project)
        if len(counts) < 2:
            raise TooFewClasses(counts)
        current = None if force else latest_version_if_nothing_new(project)
        if current is not None:
            raise NothingNewToLearn(current)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project, trigger=trigger, triggered_by=user if user and user.pk else None
            )
    except IntegrityError:
        run = TrainingRun.objects.filter(project=project, status__in=ACTIVE).first()
        if run is None or not (enqueue and _is_stale(run)):
            return run
    if enqueue:
        enqueue_on_commit("annotator.tasks.train_project_task", run.id)
    return run


def _is_stale(run: TrainingRun) -> bool:
    cutoff = timezone.now() - timedelta(seconds=settings.TRAINING_STALE_SECONDS)
    return run.status == TrainingRun.Status.RUNNING and (
        run.heartbeat_at is None or run.heartbeat_at < cutoff
    )


def _claim(run_id: int) -> int | None:
    """Conditional UPDATE: queued -> running, or reclaim a stale running run.

    Returns the attempt number we own, or None when someone else has the run.
    """
    now = timezone.now()
    stale = Q(heartbeat_at__lt=now - timedelta(seconds=settings.TRAINING_STALE_SECONDS)) | Q(
        heartbeat_at__isnull=True
    )
    worker = f"{socket.gethostname()}:{os.getpid()}"
    fields = dict(
        status=TrainingRun.Status.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1,
        worker=worker, progress={}, error="",
    )
    runs = TrainingRun.objects.filter(id=run_id)
    claimed = runs.filter(status=TrainingRun.Status.QUEUED).update(started_at=now, **fields)
    if not claimed:
        claimed = runs.filter(stale, status=TrainingRun.Status.RUNNING,
                              attempts__lt=MAX_ATTEMPTS).update(**fields)
    if not claimed:
        runs.filter(stale, status=TrainingRun.Status.RUNNING).update(
            status=TrainingRun.Status.FAILED, finished_at=now,
            error=f"gave up after {MAX_ATTEMPTS} attempts: the worker stopped sending heartbeats",
        )
        return None
    return TrainingRun.objects.values_list("attempts", flat=True).get(id=run_id)


class _Heartbeat:
    """Keeps the run's heartbeat_at fresh from a thread while this attempt works.

    Loading the model, the linear probe, evaluation and the upload report no steps, and a
    run silent for TRAINING_STALE_SECONDS is reclaimed by another worker. The thread stops
    and sets `lost` once the run is no longer this attempt's (taken over, failed, done).
    """

    def __init__(self, run_id: int, attempt: int):
        self.run_id, self.attempt = run_id, attempt
        self.every = settings.TRAINING_STALE_SECONDS / 5
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                         name=f"heartbeat-run-{run_id}")

    def __enter__(self) -> "_Heartbeat":
        # another connection cannot see a run inside an uncommitted transaction (tests)
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self) -> None:
        if self.lost.is_set():
            raise RunLost(f"run {self.run_id} attempt {self.attempt} was taken over or stopped")

    def _beat(self) -> None:
        mine = TrainingRun.objects.filter(
            id=self.run_id, status=TrainingRun.Status.RUNNING, attempts=self.attempt
        )
        try:
            while not self._done.wait(self.every):
                try:
                    if not mine.update(heartbeat_at=timezone.now()):
                        self.lost.set()
                        return
                except DatabaseError:  # a busy database: try again next beat
                    logger.warning("heartbeat of run %s failed", self.run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection


def _progress_writer(run_id: int, attempt: int, extra: Callable | None, beat: _Heartbeat):
    last = [0.0]

    def write(state: dict) -> None:
        beat.check()
        if extra:
            extra(state)
        now = time.monotonic()
        throttled = state["step"] != 1 and state["step"] < state["total_steps"]
        if throttled and "phase" not in state and now - last[0] < 1.0:
            return
        last[0] = now
        updated = TrainingRun.objects.filter(
            id=run_id, status=TrainingRun.Status.RUNNING, attempts=attempt
        ).update(progress=state, heartbeat_at=timezone.now())
        if not updated:
            raise RunLost(f"run {run_id} attempt {attempt} was taken over or stopped")

    return write


def training_run_execute(*, run_id: int, progress: Callable[[dict], None] | None = None):
    """Claim and execute one run. Returns the new ModelVersion (active unless the activation
    rule refused it: see its `activation`), or None.

    Safe to call again for the same run (redelivery): a finished run or one another
    worker is training is left alone. A failure is stored as a plain sentence; the traceback
    goes to the log only.
    """
    attempt = _claim(run_id)
    if attempt is None:
        return None
    logger.info("training run %s, attempt %s", run_id, attempt)
    try:
        with _Heartbeat(run_id, attempt) as beat:
            return _execute(run_id, attempt, beat, progress)
    except RunLost:
        logger.warning("run %s attempt %s lost to another worker", run_id, attempt)
        return None
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        TrainingRun.objects.filter(
            id=run_id, status=TrainingRun.Status.RUNNING, attempts=attempt
        ).update(status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
                 error=run_failure_text(exc))
        return None


def run_failure_text(exc: BaseException) -> str:
    """What the runs table says about a failed run: a plain sentence, no traceback and no
    server path (exception messages may carry both; the log has them)."""
    if isinstance(exc, TooFewClasses):
        return f"{exc}."
    cause = plain_cause(exc)
    return f"training failed: {cause}; the details are in the worker's log"


def _execute(run_id: int, attempt: int, beat: _Heartbeat, progress) -> ModelVersion:
    from trainer.train import train

    run = TrainingRun.objects.select_related("project").get(id=run_id)
    project = run.project
    rows = [r for r in training_labels(project) if r[2] in project.label_names]
    counts = Counter(label for _, _, label in rows)
    if len(counts) < 2:  # labels changed since the request
        raise TooFewClasses(dict(counts))
    run.label_snapshot = [[item_id, label] for item_id, _, label in rows]
    TrainingRun.objects.filter(id=run.id).update(label_snapshot=run.label_snapshot)
    gold = gold_labels(project)
    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    warm = (
        str(model_version_local_path(active))
        if active and settings.TRAINING_WARM_START
        else None
    )
    config = _config(project, warm)
    with tempfile.TemporaryDirectory(prefix="train-") as tmp:
        result = train(
            texts=[t for _, t, _ in rows], labels=[label for _, _, label in rows],
            label_names=project.label_names, config=config, output_dir=tmp,
            eval_texts=[text for _, text, _ in gold] or None,
            eval_labels=[label for _, _, label in gold] or None,
            progress=_progress_writer(run.id, attempt, progress, beat),
        )
        beat.check()
        number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("version"))["n"]
                  or 0) + 1
        # per run and attempt: a reclaimed attempt never writes into the folder of another;
        # and a random tail, as ids come back after a delete (SQLite reuses the highest)
        prefix = f"projects/{project.id}/v{number}-r{run.id}a{attempt}-{uuid.uuid4().hex[:8]}"
        model_version_store(Path(tmp), prefix)
    beat.check()
    predicted = result.eval_predictions if len(result.eval_predictions) == len(gold) else []
    gold_predictions = {item_id: int(p) for (item_id, _, _), p in zip(gold, predicted)}
    decision = _decide(project, rows, gold_predictions, result)
    logger.info("run %s: %s", run.id, decision["reason"])
    with transaction.atomic():
        Project.objects.select_for_update().get(id=project.id)
        # the last progress said "evaluating": a finished run is past every phase
        last = TrainingRun.objects.values_list("progress", flat=True).get(id=run.id) or {}
        last.pop("phase", None)
        finished = TrainingRun.objects.filter(
            id=run.id, status=TrainingRun.Status.RUNNING, attempts=attempt
        ).update(status=TrainingRun.Status.SUCCEEDED, finished_at=timezone.now(),
                 heartbeat_at=timezone.now(), progress=last)
        if not finished:
            raise RunLost(f"run {run.id} attempt {attempt} was taken over or stopped")
        version = ModelVersion.objects.create(
            project=project, version=number, training_run=run,
            base_model=result.config["resolved_model"],  # LoRA skips warm starts
            artifact_path=prefix, label_names=project.label_names, label_count=len(rows),
            metrics=result.metrics, duration_seconds=result.duration_seconds,
            device=result.device, max_length=result.config["max_length"],
            base_model_source=result.config.get("base_source", ""),
            vocabulary=result.vocabulary, activation=decision,
            gold_predictions=[[item_id, p] for item_id, p in gold_predictions.items()],
        )
        if decision["activated"]:
            _activate(version)
    return version


def _decide(project: Project, rows: list, gold_predictions: dict[int, int], result) -> dict:
    """May the version just trained replace the active one? (services.activation)"""
    index = {name: i for i, name in enumerate(project.label_names)}
    validation = [(rows[i][0], rows[i][1], index[rows[i][2]], int(p))
                  for i, p in zip(result.val_indices, result.val_predictions, strict=True)]
    active = (ModelVersion.objects.filter(project=project, is_active=True)
              .select_related("training_run").first())
    return activation_decide(project=project, active=active, gold_predictions=gold_predictions,
                             validation=validation)


def _activate(version: ModelVersion) -> None:
    """Inside a transaction holding the project row: make `version` the only active one."""
    ModelVersion.objects.filter(project_id=version.project_id, is_active=True).exclude(
        id=version.id
    ).update(is_active=False)
    ModelVersion.objects.filter(id=version.id).update(is_active=True)
    version.is_active = True
    transaction.on_commit(lambda: on_model_activated(version))


def model_version_activate(*, version: ModelVersion, user=None) -> ModelVersion:
    """Make an earlier (or any) version the active one: rollback, or "Activate anyway" for a
    version the activation rule refused (who and when are recorded on it)."""
    with transaction.atomic():
        Project.objects.select_for_update().get(id=version.project_id)
        if version.activation.get("activated") is False and not version.is_active:
            version.activation = {**version.activation, "forced_at": timezone.now().isoformat(),
                                  "forced_by": user.get_username() if user else ""}
            ModelVersion.objects.filter(id=version.id).update(activation=version.activation)
        _activate(version)
    return version


def on_model_activated(version: ModelVersion) -> None:
    """Hook after a version became active: have the pool scored with it, and its training
    labels checked for suspicious ones (a version checked before is not checked again)."""
    enqueue("annotator.tasks.score_pool_task", version.id)
    enqueue("annotator.tasks.find_label_issues_task", version.id)


def training_runs_sweep_stale() -> int:
    """Runs whose worker died: retry (re-enqueue) them, or mark failed after MAX_ATTEMPTS."""
    cutoff = timezone.now() - timedelta(seconds=settings.TRAINING_STALE_SECONDS)
    stale = TrainingRun.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True), status=TrainingRun.Status.RUNNING
    )
    count = stale.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
        error=f"gave up after {MAX_ATTEMPTS} attempts: the worker stopped sending heartbeats",
    )
    for run_id in stale.values_list("id", flat=True):
        enqueue_on_commit("annotator.tasks.train_project_task", run_id)
        count += 1
    return count


def _new_labels(project: Project):
    """(number of annotations since the last finished run began, reference time)."""
    last = (
        TrainingRun.objects.filter(project=project)
        .exclude(status__in=ACTIVE)
        .order_by("-created_at")
        .first()
    )
    annotations = Annotation.objects.filter(item__project=project, item__split=Item.Split.POOL)
    if last:
        since = last.started_at or last.created_at
        annotations = annotations.filter(created_at__gt=since)
    else:
        since = annotations.order_by("created_at").values_list("created_at", flat=True).first()
    return annotations.count(), since


def project_retrain_due(project: Project) -> bool:
    """At least N new labels since the last run, or any new label and T minutes passed.

    A setting of 0 switches its rule off.
    """
    new, since = _new_labels(project)
    if not new:
        return False
    if project.retrain_min_new_labels and new >= project.retrain_min_new_labels:
        return True
    minutes = project.retrain_every_minutes
    return bool(minutes and since and timezone.now() - since >= timedelta(minutes=minutes))


def retrain_due_projects() -> list[int]:
    """Periodic: sweep dead runs, then queue a retrain for every project that is due.

    A project whose model cannot read its texts (selectors.readability_blocks_schedule)
    waits until an admin picks another model or confirms this one.
    """
    training_runs_sweep_stale()
    busy = set(TrainingRun.objects.filter(status__in=ACTIVE).values_list("project_id", flat=True))
    queued = []
    for project in Project.objects.exclude(id__in=busy):
        if readability_blocks_schedule(project):
            logger.warning("not retraining project %s: its model %s cannot read its texts",
                           project.id, project.effective_model_name)
            continue
        if project_retrain_due(project):
            try:
                run = training_request(project=project, trigger=TrainingRun.Trigger.SCHEDULE)
            except (NothingNewToLearn, TooFewClasses):
                continue
            if run:
                queued.append(run.id)
    return queued
