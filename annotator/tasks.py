"""Celery tasks: take ids, call one service, nothing else."""

from celery import shared_task


@shared_task(name="annotator.tasks.ping")
def ping(payload: str = "pong") -> dict:
    """Round trip check for a worker: answers with its own hostname and process id."""
    import os
    import socket

    return {"payload": payload, "pid": os.getpid(), "host": socket.gethostname()}


# --- training ---------------------------------------------------------------


@shared_task(name="annotator.tasks.train_project_task", acks_late=True, reject_on_worker_lost=True)
def train_project_task(run_id: int) -> int | None:
    """Train one queued run (queue "training"). Redelivery of a finished run is a no-op."""
    from annotator.models import TrainingRun
    from annotator.services.training import training_run_execute

    if not TrainingRun.objects.filter(id=run_id, status__in=["queued", "running"]).exists():
        return None
    version = training_run_execute(run_id=run_id)
    return version.id if version else None


@shared_task(name="annotator.tasks.retrain_due_projects_task")
def retrain_due_projects_task() -> list[int]:
    """Beat: retry or fail dead runs, queue retrains for projects with enough new labels."""
    from annotator.services.training import retrain_due_projects

    return retrain_due_projects()


# --- imports ----------------------------------------------------------------


@shared_task(name="annotator.tasks.import_file_task", bind=True, max_retries=360)
def import_file_task(self, job_id: int) -> dict:
    """Run a queued upload's import (queue "default"); waits while another import of the
    project runs. A bad file is an answer (the job says why), not a task failure."""
    from annotator.services.importing import ImportBusy, ImportRejected, import_job_run

    try:
        job = import_job_run(job_id=job_id)
    except ImportBusy as exc:
        raise self.retry(exc=exc, countdown=10) from None
    except ImportRejected as exc:
        return {"job": job_id, "status": "failed", "error": str(exc)}
    return {"job": job_id, "status": job.status, "imported": job.imported}


@shared_task(name="annotator.tasks.sweep_imports_task")
def sweep_imports_task() -> dict:
    """Beat: mark imports whose process died failed, delete the rows they staged."""
    from annotator.services.importing import import_jobs_sweep

    return import_jobs_sweep()


# --- active learning ----------------------------------------------------------


@shared_task(name="annotator.tasks.score_pool_task", acks_late=True, reject_on_worker_lost=True)
def score_pool_task(model_version_id: int) -> dict:
    """Plan the scoring of the pool with a version and enqueue its chunks (queue "scoring");
    idempotent: a re-run enqueues only the chunks not done."""
    from annotator.services.ranking import pool_score_start

    return pool_score_start(model_version_id=model_version_id)


@shared_task(name="annotator.tasks.score_chunk_task", acks_late=True, reject_on_worker_lost=True)
def score_chunk_task(model_version_id: int, item_ids: list[int]) -> dict:
    """Predict one chunk of the pool (queue "scoring"); the last chunk enqueues the ranking.
    Idempotent: a done chunk is a no-op."""
    from annotator.services.ranking import pool_chunk_score

    return pool_chunk_score(model_version_id=model_version_id, item_ids=item_ids)


@shared_task(name="annotator.tasks.resume_scoring_task")
def resume_scoring_task() -> list[int]:
    """Beat: enqueue again the scorings that stopped (a scoring worker killed mid-chunk)."""
    from annotator.services.ranking import pool_scorings_resume

    return pool_scorings_resume()


@shared_task(name="annotator.tasks.rank_pool_task", acks_late=True, reject_on_worker_lost=True)
def rank_pool_task(model_version_id: int) -> dict:
    """Rank the queue from the version's stored predictions once all chunks are in (queue
    "scoring"); idempotent."""
    from annotator.services.ranking import pool_rank

    return pool_rank(model_version_id=model_version_id)


@shared_task(name="annotator.tasks.seed_pool_task", acks_late=True)
def seed_pool_task(project_id: int) -> dict:
    """Cold-start seeding before the first model (k-means over base embeddings)."""
    from annotator.services.ranking import pool_seed

    return pool_seed(project_id=project_id)


@shared_task(name="annotator.tasks.embed_pool_task", acks_late=True)
def embed_pool_task(project_id: int) -> dict:
    """Enqueue the embedding of pool items not embedded yet (queue "bulk")."""
    from annotator.services.pool_embeddings import pool_embed_start

    return pool_embed_start(project_id=project_id)


@shared_task(name="annotator.tasks.embed_chunk_task", acks_late=True, reject_on_worker_lost=True)
def embed_chunk_task(project_id: int, key: str, item_ids: list[int]) -> dict:
    """Embed one chunk of the pool with the base encoder (queue "bulk"); idempotent."""
    from annotator.services.pool_embeddings import pool_embed_chunk

    return pool_embed_chunk(project_id=project_id, key=key, item_ids=item_ids)


@shared_task(name="annotator.tasks.near_duplicates_task", acks_late=True)
def near_duplicates_task(project_id: int) -> dict:
    """Recompute the groups of open near-duplicates (queue "bulk"); idempotent."""
    from annotator.services.near_duplicates import near_duplicates_find

    return near_duplicates_find(project_id=project_id)


@shared_task(name="annotator.tasks.head_rerank_task", acks_late=True)
def head_rerank_task(project_id: int, force: bool = False) -> dict:
    """The fast loop: refit the embedding head and re-rank the queue (queue "ranking");
    skips unless enough new labels arrived since the last fit."""
    from annotator.services.fast_loop import head_rerank

    return head_rerank(project_id=project_id, force=force)


@shared_task(name="annotator.tasks.vocabulary_check_task", acks_late=True)
def vocabulary_check_task(project_id: int, import_job_id: int | None = None) -> dict:
    """Unknown-token and truncation shares of the project's model on an import's texts and on
    the whole project's (queue "bulk")."""
    from annotator.services.readability import vocabulary_check_run

    checks = [vocabulary_check_run(project_id=project_id, import_job_id=import_job_id)]
    if import_job_id:
        checks.append(vocabulary_check_run(project_id=project_id))
    return {"checks": [check.pk for check in checks if check]}


@shared_task(name="annotator.tasks.find_label_issues_task", acks_late=True)
def find_label_issues_task(model_version_id: int) -> dict:
    """Flag the training labels the new version disagrees with out of fold (queue "scoring");
    a version already checked is a no-op."""
    from annotator.services.label_review import label_issues_find

    return label_issues_find(model_version_id=model_version_id)


@shared_task(name="annotator.tasks.distill_version_task", acks_late=True)
def distill_version_task(model_version_id: int, layers: int | None = None) -> int:
    """The version's distilled student (queue "training"); its id. Made once per teacher
    and depth: a repeated task returns the same student."""
    from annotator.services.distillation import model_version_distill

    return model_version_distill(model_version_id=model_version_id, layers=layers).pk


# --- live monitoring ------------------------------------------------------------


@shared_task(name="annotator.tasks.predict_items_task", acks_late=True)
def predict_items_task(project_id: int, item_ids: list[int]) -> dict:
    """Predict pushed items with the active model, then evaluate alert rules (queue
    "ranking"); items already predicted by that version are skipped."""
    from annotator.services.monitoring import items_predict

    return items_predict(project_id=project_id, item_ids=item_ids)


@shared_task(name="annotator.tasks.refresh_insight_task")
def refresh_insight_task(project_id: int, page: str, by: str = "") -> dict:
    """Recompute one insight page's snapshot (queue "default"); the views serve the last one."""
    from annotator.services.insight_snapshots import snapshot_refresh

    return snapshot_refresh(project_id=project_id, page=page, by=by)


@shared_task(name="annotator.tasks.deliver_webhook_task", bind=True, acks_late=True,
             max_retries=None)
def deliver_webhook_task(self, alert_id: int) -> dict:
    """POST an alert to its webhook; retried with exponential back-off up to
    WEBHOOK_MAX_ATTEMPTS attempts in all (the service decides, and logs each attempt)."""
    from annotator.services.monitoring import webhook_deliver

    retry_in = webhook_deliver(alert_id=alert_id, attempt=self.request.retries + 1)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
    return {"alert": alert_id, "attempts": self.request.retries + 1}
