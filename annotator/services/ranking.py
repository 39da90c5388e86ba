"""Rank the labeling queue: score the pool with the active version, write Item.priority.

After a version becomes active (training's `on_model_activated` enqueues
`score_pool_task`), the version predicts a random candidate subsample of the open pool
(project.candidate_pool_size, so selection time does not grow with the pool) plus a fixed
stopping sample, stores Prediction rows tagged with the version, and writes the ranking
into Item.priority (higher = ask sooner), Item.scored_version and Item.queue_reason.

Scoring scales out: `pool_score_start` (score_pool_task) writes a plan (the ids to
predict, cut into chunks of SCORING_CHUNK_SIZE) and enqueues one `score_chunk_task` per
chunk on the "scoring" queue, so N workers predict N chunks at once. Each chunk stores its
Prediction rows (ignore_conflicts) and then a "done" marker; the chunk that finds every
marker present enqueues `rank_pool_task`, which ranks from the stored predictions.
`pool_score` is the synchronous entry point: the same chunks, one after the other, then
the ranking.

The join is not a Celery chord: chords need a result backend that supports them (the
"rpc" backend of AMQP deployments does not) and hold a polling `chord_unlock` task. Here
the plan, each chunk's embeddings and its marker live in the "artifacts" storage under
scoring/<version id>-<created>/ (shared by every worker: a folder, or S3), so a lost or repeated
task costs nothing: re-running score_pool_task re-enqueues the chunks, a done chunk is a
no-op, and two chunks finishing together both enqueue a ranking that runs once.

A worker killed mid-chunk leaves its task unacknowledged, and the broker hands it out again
only after its visibility timeout (hours, so that long training runs are not handed out twice):
`pool_scorings_resume` (beat, every minute) re-runs score_pool_task for an active version
whose scoring made no progress for SCORING_STALE_SECONDS.

Guarantees: only the active version scores and ranks, a version no longer active stops
(its chunks skip, its ranking is not written); ranks left by older versions are cleared in
the same transaction as the new ranking, under the project's row lock. A version activated
again (rollback) is re-ranked from its stored predictions (and stored embeddings, for
diverse batches) without running the model, so the queue and provenance follow the active
version.
"""

import io
import json
import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotator.ml.artifacts import artifacts_storage
from annotator.models import Item, ModelVersion, Prediction, Project, Strategy
from annotator.queueing import enqueue, enqueue_on_commit
from annotator.selectors.provenance import version_strategy

logger = logging.getLogger(__name__)

QUEUE_SIZE = 500  # ranked items per version; the rest of the pool keeps its random order
STOP_SAMPLE = 500  # fixed pool items (lowest random_key) every version predicts
SEED_SIZE = 50  # cold-start picks before the first model
SEED_CANDIDATES = settings.SEED_CANDIDATES


def _open_pool(project: Project):
    return Item.objects.filter(project=project, split=Item.Split.POOL,
                               annotation_count__lt=F("required_labels"))


def _candidate_ids(project: Project, seed: int) -> list[int]:
    ids = list(_open_pool(project).order_by("pk").values_list("pk", flat=True))
    size = min(len(ids), project.candidate_pool_size)
    if size == len(ids):
        return ids
    rng = np.random.default_rng(seed)
    return sorted(int(ids[i]) for i in rng.choice(len(ids), size, replace=False))


def stop_sample_ids(project: Project) -> list[int]:
    pool = Item.objects.filter(project=project, split=Item.Split.POOL)
    return list(pool.order_by("random_key", "pk").values_list("pk", flat=True)[:STOP_SAMPLE])


def _texts(ids: list[int]) -> list[str]:
    by_id = dict(Item.objects.filter(pk__in=ids).values_list("pk", "text"))
    return [by_id[i] for i in ids]


def _ranked(project: Project):
    """Items carrying a rank or a version of an earlier ranking."""
    return Item.objects.filter(project=project).filter(
        Q(priority__isnull=False) | Q(scored_version__isnull=False)
        | Q(ranked_by_head__isnull=False))


def _ranks_queue(version: ModelVersion) -> bool:
    """The version's ranking is the project's ranking (nothing left by another)."""
    ranked = _ranked(version.project)
    return (ranked.filter(scored_version=version).exists()
            and not ranked.exclude(scored_version=version).exists())


def clear_ranks(project: Project) -> int:
    """Forget every earlier ranking (older versions, cold-start seeds) of the project.

    scored_version goes too: provenance must not name a version that no longer ranks.
    """
    return _ranked(project).update(priority=None, scored_version=None, queue_reason="",
                                   ranked_by_head=None, head_label="", head_confidence=None)


def _write_ranking(version: ModelVersion | None, picks, ids) -> None:
    n = len(picks)
    items = [Item(pk=ids[p.index], priority=float(n - rank), scored_version=version,
                  queue_reason=p.reason) for rank, p in enumerate(picks)]
    Item.objects.bulk_update(items, ["priority", "scored_version", "queue_reason"],
                             batch_size=1000)


def _strategy(version: ModelVersion, project: Project) -> str:
    if version.label_count < project.uncertainty_after_labels:
        return Strategy.RANDOM
    return version_strategy(project)


def _picks(version: ModelVersion, project: Project, proba, embeddings, queue_size: int):
    from trainer.strategies import query

    if not len(proba):
        return []
    return query(_strategy(version, project), proba, min(queue_size, len(proba)),
                 random_share=project.random_share, embeddings=embeddings,
                 diverse=project.diverse_batches, seed=version.pk)


def _save_ranking(version: ModelVersion, picks, ids) -> int | None:
    """In one transaction: replace the ranking. None if the version is no longer active."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=version.project_id)
        if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
            return None
        cleared = clear_ranks(version.project)
        _write_ranking(version, picks, ids)
    return cleared


def _active_version(model_version_id: int) -> ModelVersion | None:
    version = ModelVersion.objects.select_related("project").filter(pk=model_version_id).first()
    return version if version is not None and version.is_active else None


# --- the plan and the chunk files (artifacts storage, scoring/<version id>-<created>/) ---------------
# plan.json: {"candidates": n, "chunk_size": k}; ids.npy: candidates then the stopping sample.
# emb-<first id>.npy: the chunk's embeddings (float16, one row per id; zero columns when the
# project does not use diverse batches), written before its predictions commit.
# done-<first id>: empty, written after they commit: the chunk is done.

def _folder(version: ModelVersion) -> str:
    # created_at too: ids come back after a database is restored or rolled back (tests)
    return f"scoring/{version.pk}-{version.created_at:%Y%m%dT%H%M%S%f}"


def _write(name: str, data: bytes) -> None:
    storage = artifacts_storage()
    if storage.exists(name):  # Storage.save never overwrites: it would pick another name
        storage.delete(name)
    storage.save(name, ContentFile(data))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _read_npy(name: str) -> np.ndarray:
    with artifacts_storage().open(name, "rb") as f:
        return np.load(io.BytesIO(f.read()), allow_pickle=False)


def _plan_load(version: ModelVersion) -> tuple[np.ndarray, int, int] | None:
    """(ids, candidates, chunk_size), or None when the version has no plan."""
    storage, folder = artifacts_storage(), _folder(version)
    if not storage.exists(f"{folder}/plan.json"):
        return None
    with storage.open(f"{folder}/plan.json", "rb") as f:
        plan = json.loads(f.read())
    return _read_npy(f"{folder}/ids.npy"), plan["candidates"], plan["chunk_size"]


def _chunks(ids, chunk_size: int) -> list[list[int]]:
    return [[int(i) for i in ids[k:k + chunk_size]] for k in range(0, len(ids), chunk_size)]


def _plan_make(version: ModelVersion) -> tuple[np.ndarray, int, int]:
    project = version.project
    candidates = _candidate_ids(project, seed=version.pk)
    chosen = set(candidates)
    ids = np.asarray(candidates + [i for i in stop_sample_ids(project) if i not in chosen],
                     dtype=np.int64)
    chunk_size = max(1, settings.SCORING_CHUNK_SIZE)
    folder = _folder(version)
    _write(f"{folder}/ids.npy", _npy(ids))  # the plan file last: it says the plan is whole
    _write(f"{folder}/plan.json", json.dumps(
        {"candidates": len(candidates), "chunk_size": chunk_size}).encode())
    return ids, len(candidates), chunk_size


def _missing_chunks(version: ModelVersion, ids, chunk_size: int) -> list[list[int]]:
    storage, folder = artifacts_storage(), _folder(version)
    _, files = storage.listdir(folder)
    done = set(files)
    return [chunk for chunk in _chunks(ids, chunk_size) if f"done-{chunk[0]}" not in done]


def _chunk_predict(version: ModelVersion, item_ids: list[int], quantize: bool | None) -> dict:
    """Predict one chunk, store its embeddings, its predictions, then its done marker.

    Idempotent: a done chunk, or one whose items all have predictions of the version (a
    re-run, a rollback to a version scored before scoring was chunked), runs no model and
    stores nothing new, unless a diverse-batch project lacks the chunk's embeddings.
    """
    from annotator.ml.artifacts import model_version_local_path
    from trainer.predict import load_scorer, predict_and_embed
    from trainer.strategies import margin, uncertainty

    storage, folder = artifacts_storage(), _folder(version)
    done, emb_name = f"{folder}/done-{item_ids[0]}", f"{folder}/emb-{item_ids[0]}.npy"
    if storage.exists(done):
        return {"skipped": "chunk already scored"}
    project = version.project
    predicted = Prediction.objects.filter(model_version=version, item_id__in=item_ids).count()
    if predicted == len(item_ids) and (storage.exists(emb_name) or not project.diverse_batches):
        if not storage.exists(emb_name):
            _write(emb_name, _npy(np.empty((len(item_ids), 0), dtype=np.float16)))
        _write(done, b"")
        return {"scored": 0}

    if quantize is None:
        quantize = settings.SCORING_INT8
    device = settings.TRAINING_DEVICE
    tokenizer, model = load_scorer(str(model_version_local_path(version)), device=device,
                                   quantize=quantize)
    proba, emb = predict_and_embed(model, tokenizer, _texts(item_ids),
                                   max_length=version.max_length,
                                   device="cpu" if quantize else device)
    names = version.label_names or project.label_names
    strategy = _strategy(version, project)
    scores = margin(proba) if strategy == Strategy.RANDOM else uncertainty(strategy, proba)
    keep = emb if project.diverse_batches else np.empty((len(item_ids), 0))
    _write(emb_name, _npy(np.asarray(keep, dtype=np.float16)))
    Prediction.objects.bulk_create(
        [Prediction(item_id=item_id, model_version=version, label=names[int(p.argmax())],
                    probabilities=[round(float(x), 6) for x in p], uncertainty=float(s))
         for item_id, p, s in zip(item_ids, proba, scores, strict=True)],
        batch_size=1000, ignore_conflicts=True)
    _write(done, b"")
    return {"scored": len(item_ids)}


def pool_chunk_score(*, model_version_id: int, item_ids: list[int],
                     quantize: bool | None = None) -> dict:
    """Score one chunk of the plan; the chunk that finds every chunk done enqueues the ranking.

    A version no longer active stops here: no model runs, nothing is stored.
    """
    version = _active_version(model_version_id)
    if version is None:
        return {"skipped": "not the active version"}
    plan = _plan_load(version)
    if plan is None or not item_ids:
        return {"skipped": "no plan"}
    result = _chunk_predict(version, item_ids, quantize)
    if not _missing_chunks(version, plan[0], plan[2]):
        enqueue_on_commit("annotator.tasks.rank_pool_task", version.pk)
        result["last"] = True
    return result


def pool_rank(*, model_version_id: int, queue_size: int = QUEUE_SIZE) -> dict:
    """Rank the queue from the version's stored predictions once every chunk is done.

    Ranks the planned candidates still in the open pool (an item labeled meanwhile is not
    asked again). Diverse batches read the chunks' stored embeddings; a version planned
    without them (diverse_batches turned on since) gets the top uncertain items.
    """
    version = _active_version(model_version_id)
    if version is None:
        return {"skipped": "not the active version"}
    if _ranks_queue(version):
        return {"skipped": "already scored"}
    plan = _plan_load(version)
    if plan is None:
        return {"skipped": "no plan"}
    ids, n_cand, chunk_size = plan
    missing = _missing_chunks(version, ids, chunk_size)
    if missing:
        return {"skipped": f"{len(missing)} chunks not scored yet"}
    project = version.project
    rows = dict(Prediction.objects.filter(model_version=version, item__in=_open_pool(project))
                .values_list("item_id", "probabilities"))
    rank_ids = [int(i) for i in ids[:n_cand] if int(i) in rows]
    proba = np.array([rows[i] for i in rank_ids], dtype=float)
    embeddings = None
    if project.diverse_batches and rank_ids:
        parts = [_read_npy(f"{_folder(version)}/emb-{chunk[0]}.npy")
                 for chunk in _chunks(ids, chunk_size)]
        if all(part.shape[1] for part in parts):
            row = {int(i): r for r, i in enumerate(ids)}
            embeddings = np.concatenate(parts).astype(np.float32)[[row[i] for i in rank_ids]]
    picks = _picks(version, project, proba, embeddings, queue_size)
    cleared = _save_ranking(version, picks, rank_ids)
    if cleared is None:
        return {"skipped": "another version became active while ranking"}
    logger.info("ranked %s items from the stored predictions of %s", len(picks), version)
    return {"ranked": len(picks), "cleared": cleared}


def pool_score_start(*, model_version_id: int) -> dict:
    """Fan out: enqueue the chunks not done yet on the "scoring" queue (or the ranking).

    Re-running it resumes an interrupted scoring: done chunks are not enqueued again.
    """
    version = _active_version(model_version_id)
    if version is None:
        return {"skipped": "not the active version"}
    if _ranks_queue(version):
        return {"skipped": "already scored"}
    plan = _plan_load(version) or _plan_make(version)
    missing = _missing_chunks(version, plan[0], plan[2])
    for chunk in missing:
        enqueue_on_commit("annotator.tasks.score_chunk_task", version.pk, chunk)
    if not missing:
        enqueue_on_commit("annotator.tasks.rank_pool_task", version.pk)
    return {"chunks": len(missing), "items": len(plan[0])}


def _scoring_stalled(version: ModelVersion) -> bool:
    """No chunk of the version's scoring finished for SCORING_STALE_SECONDS.

    The count of done chunks seen, and when, is kept in the folder (`progress.json`): it is
    written whenever the count moved (or on the first look), and again when a resume is
    asked for, so a slow scoring is re-enqueued at most once per period, not on every beat.
    """
    storage, folder = artifacts_storage(), _folder(version)
    try:
        _, files = storage.listdir(folder)
    except FileNotFoundError:  # a folder storage before the plan
        files = []
    done = sum(name.startswith("done-") for name in files)
    seen = None
    if "progress.json" in files:
        with storage.open(f"{folder}/progress.json", "rb") as f:
            seen = json.loads(f.read()).get("done")
    now = timezone.now()
    if seen == done:
        since = storage.get_modified_time(f"{folder}/progress.json")
        if now - since < timedelta(seconds=settings.SCORING_STALE_SECONDS):
            return False
    _write(f"{folder}/progress.json", json.dumps({"done": done}).encode())
    return seen == done


def pool_scorings_resume() -> list[int]:
    """Beat: score_pool_task again for each active version whose scoring stopped before its
    last chunk (a worker killed mid-chunk or before the plan); it enqueues the chunks not done.
    Returns the versions resumed. A chunk still running meanwhile is not harmed: chunks are
    idempotent."""
    resumed = []
    for version in ModelVersion.objects.filter(is_active=True).select_related("project"):
        if _ranks_queue(version) or not _open_pool(version.project).exists():
            continue
        plan = _plan_load(version)
        if plan is not None and not _missing_chunks(version, plan[0], plan[2]):
            continue  # every chunk is in: what ranks the queue now (the fast loop's head) stays
        if _scoring_stalled(version):
            logger.warning("the scoring of %s made no progress for %s s: enqueued again",
                           version, settings.SCORING_STALE_SECONDS)
            enqueue_on_commit("annotator.tasks.score_pool_task", version.pk)
            resumed.append(version.pk)
    return resumed


def pool_score(*, model_version_id: int, queue_size: int = QUEUE_SIZE,
               quantize: bool | None = None) -> dict:
    """Synchronously: predict the missing chunks with the version, then rank the queue.

    Only the active version scores; anything else returns quietly with a reason. A version
    with predictions (activated again) is re-ranked from them, unless it ranks the queue
    already.
    """
    version = _active_version(model_version_id)
    if version is None:
        return {"skipped": "not the active version"}
    if _ranks_queue(version):
        return {"skipped": "already scored"}
    ids, _, chunk_size = _plan_load(version) or _plan_make(version)
    if not len(ids):
        with transaction.atomic():
            clear_ranks(version.project)
        return {"scored": 0, "ranked": 0}
    started = time.perf_counter()
    missing = _missing_chunks(version, ids, chunk_size)
    for chunk in missing:
        if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
            return {"skipped": "another version became active while scoring"}
        _chunk_predict(version, chunk, quantize)
    result = pool_rank(model_version_id=version.pk, queue_size=queue_size)
    if "skipped" in result:
        return result
    if not missing:  # every chunk was done already: a re-rank (rollback)
        return {"reranked": result["ranked"], "cleared": result["cleared"]}
    seconds = round(time.perf_counter() - started, 2)
    scored = sum(len(chunk) for chunk in missing)
    logger.info("scored %s items with %s in %ss, ranked %s", scored, version, seconds,
                result["ranked"])
    return {"scored": scored, **result, "seconds": seconds}


def seeding_request(project_id: int) -> None:
    """Queue a seeding unless one is queued and not started: pushes and import batches
    arriving during a seeding ask for one more run, not one each."""
    if cache.add(_seeding_key(project_id), True, timeout=SEEDING_PENDING_SECONDS):
        enqueue("annotator.tasks.seed_pool_task", project_id)


def seeding_started(project_id: int) -> None:
    """The queued seeding starts: items arriving from now on ask for another one."""
    cache.delete(_seeding_key(project_id))


def _seeding_key(project_id: int) -> str:
    return f"seeding-pending:{project_id}"


SEEDING_PENDING_SECONDS = 3600  # a lost message stops blocking new requests after this


def pool_seed(*, project_id: int, size: int = SEED_SIZE) -> dict:
    """Cold start: before any model, queue items spread over the embedding space first.

    K-means over base-encoder embeddings of a candidate subsample; the item nearest each
    centroid gets a priority and queue_reason "seed". Does nothing once a model exists.
    """
    from trainer.predict import embed_with_base
    from trainer.strategies import SEED, Pick, select_seed

    seeding_started(project_id)
    project = Project.objects.filter(pk=project_id).first()
    if project is None or project.model_versions.filter(is_active=True).exists():
        return {"skipped": "no project, or it already has a model"}
    candidates = _candidate_ids(project, seed=project.pk)
    if len(candidates) > SEED_CANDIDATES:
        rng = np.random.default_rng(project.pk)
        candidates = sorted(int(i) for i in rng.choice(candidates, SEED_CANDIDATES,
                                                       replace=False))
    if not candidates:
        return {"seeded": 0}
    emb = embed_with_base(_texts(candidates), model_name=project.effective_model_name,
                          max_length=project.max_length_or_cap,
                          device=settings.TRAINING_DEVICE)
    picks = [Pick(int(i), SEED, 0.0) for i in select_seed(emb, min(size, len(candidates)),
                                                         seed=project.pk)]
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        if project.model_versions.filter(is_active=True).exists():
            return {"skipped": "a model became active while seeding"}
        clear_ranks(project)
        _write_ranking(None, picks, candidates)
    return {"seeded": len(picks)}
