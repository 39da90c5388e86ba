"""Score the pool with the active model and rank the labeling queue.

After a version becomes active (training's `on_model_activated` enqueues
`score_pool_task`), `pool_score` predicts a random candidate subsample of the open
pool (project.candidate_pool_size, so selection time does not grow with the pool) plus
a fixed stopping sample, stores Prediction rows tagged with the version, and writes the
ranking into Item.priority (higher = ask sooner), Item.scored_version and
Item.queue_reason. Ranks left by older versions are cleared in the same transaction.

Idempotent: the predictions and the ranking of one version are written in one
transaction, so a version that has predictions is fully scored and a re-run is a no-op.
A version activated again (rollback) already has predictions: its ranking is rebuilt from
them, without running the model, so the queue and provenance follow the active version.
"""

import logging
import time

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from annotator.models import Annotation, Item, ModelVersion, Prediction, Project, Strategy

logger = logging.getLogger(__name__)

QUEUE_SIZE = 500  # ranked items per version; the rest of the pool keeps its random order
STOP_SAMPLE = 500  # fixed pool items (lowest random_key) every version predicts
SEED_SIZE = 50  # cold-start picks before the first model


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


def _stop_sample_ids(project: Project) -> list[int]:
    pool = Item.objects.filter(project=project, split=Item.Split.POOL)
    return list(pool.order_by("random_key", "pk").values_list("pk", flat=True)[:STOP_SAMPLE])


def _texts(ids: list[int]) -> list[str]:
    by_id = dict(Item.objects.filter(pk__in=ids).values_list("pk", "text"))
    return [by_id[i] for i in ids]


def _ranked(project: Project):
    """Items carrying a rank or a version of an earlier ranking."""
    return Item.objects.filter(project=project).filter(
        Q(priority__isnull=False) | Q(scored_version__isnull=False))


def _clear_ranks(project: Project) -> int:
    """Forget every earlier ranking (older versions, cold-start seeds) of the project.

    scored_version goes too: provenance must not name a version that no longer ranks.
    """
    return _ranked(project).update(priority=None, scored_version=None, queue_reason="")


def _write_ranking(version: ModelVersion | None, picks, ids) -> None:
    n = len(picks)
    items = [Item(pk=ids[p.index], priority=float(n - rank), scored_version=version,
                  queue_reason=p.reason) for rank, p in enumerate(picks)]
    Item.objects.bulk_update(items, ["priority", "scored_version", "queue_reason"],
                             batch_size=1000)


def _strategy(version: ModelVersion, project: Project) -> str:
    if version.label_count < project.uncertainty_after_labels:
        return Strategy.RANDOM
    return project.strategy


def _picks(version: ModelVersion, project: Project, proba, embeddings, queue_size: int):
    from trainer.strategies import query

    if not len(proba):
        return []
    return query(_strategy(version, project), proba, min(queue_size, len(proba)),
                 random_share=project.random_share, embeddings=embeddings,
                 diverse=project.diverse_batches, seed=version.pk)


def _save_ranking(version: ModelVersion, picks, ids, predictions=()) -> int | None:
    """In one transaction: store predictions, replace the ranking. None if no longer active."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=version.project_id)
        if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
            return None
        Prediction.objects.bulk_create(predictions, batch_size=1000, ignore_conflicts=True)
        cleared = _clear_ranks(version.project)
        _write_ranking(version, picks, ids)
    return cleared


def _rerank_from_predictions(version: ModelVersion, queue_size: int) -> dict:
    """Rank the open pool items the version predicted, from the stored probabilities.

    Embeddings are not stored, so a diverse-batch project gets the top uncertain items.
    """
    project = version.project
    rows = list(Prediction.objects.filter(model_version=version, item__in=_open_pool(project))
                .order_by("item_id").values_list("item_id", "probabilities"))
    ids = [item_id for item_id, _ in rows]
    proba = np.array([probs for _, probs in rows], dtype=float)
    picks = _picks(version, project, proba, None, queue_size)
    cleared = _save_ranking(version, picks, ids)
    if cleared is None:
        return {"skipped": "another version became active while ranking"}
    logger.info("re-ranked %s items from the stored predictions of %s", len(picks), version)
    return {"reranked": len(picks), "cleared": cleared}


def pool_score(*, model_version_id: int, queue_size: int = QUEUE_SIZE,
               quantize: bool | None = None) -> dict:
    """Predict the candidates with the version, store predictions, rank the queue.

    Only the active version scores; anything else returns quietly with a reason. A version
    with predictions (activated again) is re-ranked from them, unless it ranks the queue
    already.
    """
    from trainer.scoring import load_scorer, predict_and_embed
    from trainer.strategies import margin, uncertainty

    from annotator.services.training import model_version_local_path

    version = ModelVersion.objects.select_related("project").filter(pk=model_version_id).first()
    if version is None or not version.is_active:
        return {"skipped": "not the active version"}
    project = version.project
    if Prediction.objects.filter(model_version=version).exists():
        if not _ranked(project).exclude(scored_version=version).exists():
            return {"skipped": "already scored"}
        return _rerank_from_predictions(version, queue_size)
    started = time.perf_counter()
    candidates = _candidate_ids(project, seed=version.pk)
    chosen = set(candidates)
    stop_ids = [i for i in _stop_sample_ids(project) if i not in chosen]
    ids = candidates + stop_ids
    if not ids:
        with transaction.atomic():
            _clear_ranks(project)
        return {"scored": 0, "ranked": 0}

    if quantize is None:
        quantize = settings.SCORING_INT8
    device = settings.TRAINING_DEVICE
    tokenizer, model = load_scorer(str(model_version_local_path(version)), device=device,
                                   quantize=quantize)
    proba, emb = predict_and_embed(model, tokenizer, _texts(ids), max_length=version.max_length,
                                   device="cpu" if quantize else device)
    names = version.label_names or project.label_names
    strategy = _strategy(version, project)
    scores = margin(proba) if strategy == Strategy.RANDOM else uncertainty(strategy, proba)

    n_cand = len(candidates)
    picks = _picks(version, project, proba[:n_cand], emb[:n_cand], queue_size)
    predictions = [
        Prediction(item_id=item_id, model_version=version, label=names[int(p.argmax())],
                   probabilities=[round(float(x), 6) for x in p], uncertainty=float(s))
        for item_id, p, s in zip(ids, proba, scores, strict=True)
    ]
    cleared = _save_ranking(version, picks, candidates, predictions)
    if cleared is None:
        return {"skipped": "another version became active while scoring"}
    seconds = round(time.perf_counter() - started, 2)
    logger.info("scored %s items with %s in %ss, ranked %s", len(ids), version, seconds,
                len(picks))
    return {"scored": len(ids), "ranked": len(picks), "cleared": cleared, "seconds": seconds}


def pool_seed(*, project_id: int, size: int = SEED_SIZE) -> dict:
    """Cold start: before any model, queue items spread over the embedding space first.

    K-means over base-encoder embeddings of a candidate subsample; the item nearest each
    centroid gets a priority and queue_reason "seed". Does nothing once a model exists.
    """
    from trainer.scoring import embed_with_base
    from trainer.strategies import SEED, Pick, select_seed

    project = Project.objects.filter(pk=project_id).first()
    if project is None or project.model_versions.filter(is_active=True).exists():
        return {"skipped": "no project, or it already has a model"}
    candidates = _candidate_ids(project, seed=project.pk)
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
        _clear_ranks(project)
        _write_ranking(None, picks, candidates)
    return {"seeded": len(picks)}


# --- provenance and suggestions (reads used by labeling) ----------------------------------

def _active_prediction(item: Item) -> Prediction | None:
    version_id = item.scored_version_id
    if version_id is None:
        version_id = (ModelVersion.objects.filter(project_id=item.project_id, is_active=True)
                      .values_list("pk", flat=True).first())
    if version_id is None:
        return None
    return Prediction.objects.filter(item=item, model_version_id=version_id).first()


def annotation_provenance(item: Item) -> dict:
    """Annotation fields: model version, strategy and the model's prediction at labeling time."""
    fields: dict = {"model_version_id": item.scored_version_id}
    if item.queue_reason in (Annotation.Picked.UNCERTAINTY, Annotation.Picked.RANDOM_CONTROL,
                             Annotation.Picked.SEED):
        fields["strategy"] = item.project.strategy if item.queue_reason != "seed" else "seed"
    prediction = _active_prediction(item)
    if prediction is not None:
        fields["model_version_id"] = prediction.model_version_id
        fields["predicted_label"] = prediction.label
        fields["predicted_confidence"] = float(max(prediction.probabilities))
    return fields
