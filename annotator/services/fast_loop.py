"""The fast loop: a head on stored embeddings re-ranks the queue after every few labels.

The fine-tune (annotator/services/training.py) is the heavy periodic job; between two
versions its ranking grows stale while people label. Here, after every
`project.fast_loop_every` new labels, a logistic-regression head (trainer.head) is refit on
the pool's stored embeddings (annotator/services/pool_embeddings.py) and a small-text
strategy (trainer.strategies.head_query) writes the top of the queue. Each refit is a
HeadFit row; the items it ranked point to it (Item.ranked_by_head), and so does every
annotation made on them (provenance: which head, on how many labels, which strategy).

Cold start (project.cold_start_diversity): until two consecutive heads agree on the fixed
stopping sample with Cohen's kappa >= FAST_LOOP_TRUST_KAPPA, the picks do not follow an
untrustworthy model's uncertainty; once trusted, the project's strategy ranks. Where the
zero-shot scorer applies (services/zero_shot.py: an e5 encoder) the cold start is the one
measured above k-means (docs/zero_shot.md, the simulation's "zero_shot+bal+st"): each class's
clearest items by the label descriptions (trainer.zero_shot.confident_query), from the very
first item, and every model is the head blended with the scorer by the handover rule
(zero_shot_weight: 1 with no label, 0.43 at 20); HeadFit.strategy says "zero_shot", then
"<strategy>+zero_shot". Elsewhere the cold-start picks are k-means over the embeddings.
Once trusted, project.class_sample_share of each queue are class samples (drawn at random
within each class the model predicts; trainer.strategies.with_class_samples), half that
share while the model predicts every class often (class_sample_share): uncertain picks alone
taught English fine-tunes too narrow a neutral class, and on even Chinese classes let a
fine-tune collapse, while a full share there cost the head its ranking
(docs/bench/label_efficiency.md).

A strategy sees at most FAST_LOOP_CANDIDATES unlabeled items (FAST_LOOP_DIVERSITY_CANDIDATES
for the embedding-diversity ones), drawn at random (small-text SubsamplingQueryStrategy) or,
with FAST_LOOP_SUBSAMPLING="anchor", around class anchors (AnchorAL).

Triggered from labeling (`label_recorded`, at most one enqueue per web process and project
every FAST_LOOP_THROTTLE_SECONDS) and when the pool's embeddings are complete; the task
itself decides whether enough new labels arrived, so extra triggers cost one query.
"""

import logging
import time

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from annotator.models import Annotation, HeadFit, Item, Project
from annotator.queueing import enqueue_on_commit
from annotator.services.zero_shot import descriptions_prepare, zero_shot_scorer
from trainer.strategy_names import (
    BLENDED_SUFFIX,
    CLASS_SAMPLE_SUFFIX,
    COLD_START_KMEANS,
    COLD_START_ZERO_SHOT,
    head_strategy_for,
)
from trainer.zero_shot import BlendedScorer, confident_query, zero_shot_weight

logger = logging.getLogger(__name__)

SELF_TRAINING_SAMPLE = 20_000  # unlabeled items the head may draw pseudo-labels from


def label_recorded(project: Project) -> None:
    """A label arrived: ask for a re-rank, at most once per FAST_LOOP_THROTTLE_SECONDS for all
    web processes together (a mark in the shared cache; no SQL here).

    The re-rank runs when the window has closed, a second after (for the requests still
    committing), so it counts every label of the window: the labels that arrive while the
    window is open ask for nothing, and a re-rank run at its start would leave the last
    labels before a pause out of the queue until somebody labels again.
    """
    window = settings.FAST_LOOP_THROTTLE_SECONDS
    if project.fast_loop_every and cache.add(f"fast-loop:{project.pk}", 1, timeout=window):
        enqueue_on_commit("annotator.tasks.head_rerank_task", project.pk, False,
                          countdown=window + 1)


def _labeled(project: Project, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows into ids, class indices) of labeled pool items: the adjudicated label, else the
    majority of their annotations (ties: the first label of the label set)."""
    names = project.label_names
    votes: dict[int, np.ndarray] = {}
    rows = Annotation.objects.filter(item__project=project, item__split=Item.Split.POOL)
    if not project.bulk_labels_in_training:
        rows = rows.exclude(picked_by=Annotation.Picked.BULK)
    rows = rows.values_list("item_id", "label", "item__final_label")
    for item_id, label, final in rows:
        counts = votes.setdefault(item_id, np.zeros(len(names)))
        if final in names:
            counts[:] = 0
            counts[names.index(final)] = 1e9
        elif label in names:
            counts[names.index(label)] += 1
    row_of = {int(i): r for r, i in enumerate(ids)}
    pairs = [(row_of[i], int(c.argmax())) for i, c in votes.items() if i in row_of and c.any()]
    if not pairs:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    rows_, classes = zip(*sorted(pairs), strict=True)
    return np.asarray(rows_), np.asarray(classes)


def _stop_rows(project: Project, ids: np.ndarray) -> np.ndarray:
    from annotator.services.ranking import stop_sample_ids

    row_of = {int(i): r for r, i in enumerate(ids)}
    return np.asarray([row_of[i] for i in stop_sample_ids(project) if i in row_of], dtype=int)


def _trust(project: Project, last: HeadFit | None,
           current: np.ndarray) -> tuple[bool, float | None]:
    """Cold start over? Once trusted, always; else compare with the previous fit's
    predictions on the stopping sample."""
    from trainer.strategies import predictions_stable

    if last is not None and last.trusted:
        return True, None
    previous = np.asarray(last.stop_predictions) if last and last.stop_predictions else None
    return predictions_stable(previous, current, len(project.label_names),
                              settings.FAST_LOOP_TRUST_KAPPA)


def _write(project: Project, fit: HeadFit, picks, ids: np.ndarray,
           proba: np.ndarray | None) -> int | None:
    """Replace the project's ranking with the head's picks (and its predictions for them,
    the suggestions while this ranking stands); None if a fit on more labels ranked."""
    from annotator.services.ranking import clear_ranks

    n, names = len(picks), project.label_names
    items = [Item(pk=int(ids[p.index]), priority=float(n - rank), scored_version=None,
                  queue_reason=p.reason, ranked_by_head=fit,
                  head_label=names[int(proba[rank].argmax())] if proba is not None else "",
                  head_confidence=float(proba[rank].max()) if proba is not None else None)
             for rank, p in enumerate(picks)]
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        newer = HeadFit.objects.filter(project=project, labels__gt=fit.labels).exists()
        if newer:
            return None
        fit.save()
        clear_ranks(project)
        Item.objects.bulk_update(items, ["priority", "scored_version", "queue_reason",
                                         "ranked_by_head", "head_label", "head_confidence"],
                                 batch_size=1000)
    return n


def _training_view(project: Project, ids: np.ndarray, x: np.ndarray):
    """The embedded items a fit looks at (labeled ones and open unlabeled ones), with the
    labeled rows and their classes: (ids, x, labeled rows, classes)."""
    open_ids = set(Item.objects.filter(project=project, split=Item.Split.POOL,
                                       annotation_count=0).values_list("pk", flat=True))
    lab_rows, y = _labeled(project, ids)
    keep = np.asarray(sorted(set(lab_rows.tolist())
                             | {r for r, i in enumerate(ids.tolist()) if i in open_ids}),
                      dtype=int)
    position = {int(r): k for k, r in enumerate(keep)}
    lab_rows = np.asarray([position[int(r)] for r in lab_rows], dtype=int)
    return ids[keep], x[keep], lab_rows, y


def _fit(project: Project, x: np.ndarray, lab_rows: np.ndarray, y: np.ndarray):
    """The head (None without labels); self-training draws from a sample of the rest."""
    from trainer.head import SelfTraining, fit_head

    if not len(lab_rows):
        return None
    unlabeled = None
    if project.self_training:
        rest = np.setdiff1d(np.arange(len(x)), lab_rows)
        sample = np.random.default_rng(project.pk).choice(
            rest, min(len(rest), SELF_TRAINING_SAMPLE), replace=False)
        unlabeled = x[sample] if len(sample) else None
    return fit_head(x[lab_rows], y, len(project.label_names), x_unlabeled=unlabeled,
                    self_training=SelfTraining() if project.self_training else None,
                    seed=project.pk)


def _with_class_samples(project: Project, model, x: np.ndarray, lab_rows: np.ndarray, picks,
                        seed: int):
    """The project's class_sample_share of the picks (half of it on even predicted classes)
    drawn at random within the classes the model predicts, of at most FAST_LOOP_CANDIDATES
    open rows (a bounded re-rank)."""
    from trainer.strategies import class_sample_share, with_class_samples

    rest = np.setdiff1d(np.arange(len(x)), lab_rows)
    rows = np.random.default_rng(seed).choice(
        rest, min(len(rest), settings.FAST_LOOP_CANDIDATES), replace=False)
    predicted = model.predict_proba(x[rows]).argmax(axis=1)
    share = class_sample_share(predicted, len(project.label_names), project.class_sample_share)
    return with_class_samples(list(picks), predicted, rows, share, seed)


def head_rerank(*, project_id: int, force: bool = False, queue_size: int | None = None) -> dict:
    """Refit the head on the labels so far and re-rank the queue (task head_rerank_task).

    Skips when the project is off (fast_loop_every 0), archived, has no embeddings yet, or
    fewer than fast_loop_every labels arrived since the last fit (unless `force`).
    """
    from annotator.services.pool_embeddings import embeddings_load, encoder_key, pool_embed_start
    from trainer.head import EmbeddingHead
    from trainer.strategies import EMBEDDING_STRATEGIES, SEED, head_query

    started = time.perf_counter()
    project = Project.objects.filter(pk=project_id).first()
    if project is None or project.archived_at:
        return {"skipped": "no project, archived, or the fast loop is off"}
    if force:  # the pool was just embedded, or the labeling page found them missing
        descriptions_prepare(project)
    if not project.fast_loop_every:
        return {"skipped": "no project, archived, or the fast loop is off"}
    last = HeadFit.objects.filter(project=project).first()
    labeled_now = (Item.objects.filter(project=project, split=Item.Split.POOL,
                                       annotation_count__gt=0).count())
    if not force and last is not None and labeled_now - last.labels < project.fast_loop_every:
        return {"skipped": f"{labeled_now - last.labels} new labels since the last fit"}
    key = encoder_key(project)
    ids, x = embeddings_load(project, key)
    if not len(ids):
        pool_embed_start(project_id=project.pk)
        return {"skipped": "the pool has no embeddings yet (embedding enqueued)"}
    embedded = len(ids)
    ids, x, lab_rows, y = _training_view(project, ids, x)
    if len(ids) == len(lab_rows):
        return {"skipped": "no open item has an embedding"}

    head = _fit(project, x, lab_rows, y)
    scorer = (zero_shot_scorer(project, x.shape[1]) if project.cold_start_diversity else None)
    weight = zero_shot_weight(len(lab_rows)) if scorer is not None else 0.0
    model = head if scorer is None else scorer if head is None else BlendedScorer(
        scorer, head, weight)
    trusted, kappa, stop_predictions = False, None, np.zeros(0, dtype=int)
    if head is not None:  # the scorer alone is not compared (the simulation's rule)
        stop_predictions = model.predict_proba(x[_stop_rows(project, ids)]).argmax(axis=1)
        trusted, kappa = _trust(project, last, stop_predictions)
    strategy = head_strategy_for(project.strategy)
    cold_start = head is None or (project.cold_start_diversity and not trusted)
    if cold_start:
        strategy = COLD_START_KMEANS if scorer is None else COLD_START_ZERO_SHOT
    n = min(queue_size or settings.FAST_LOOP_QUEUE_SIZE, len(ids) - len(lab_rows))
    seed = project.pk * 100_003 + len(lab_rows)
    if strategy == COLD_START_ZERO_SHOT:
        picks = confident_query(model, x, lab_rows, n, random_share=project.random_share,
                                seed=seed, reason=SEED)
    else:
        picks = head_query(
            strategy, model if model is not None else EmbeddingHead(len(project.label_names)),
            x, lab_rows, y, n,
            random_share=project.random_share, subsampling=settings.FAST_LOOP_SUBSAMPLING,
            candidates=(settings.FAST_LOOP_DIVERSITY_CANDIDATES
                        if strategy in EMBEDDING_STRATEGIES else settings.FAST_LOOP_CANDIDATES),
            seed=seed)
        if not cold_start and strategy != "random" and project.class_sample_share:
            picks = _with_class_samples(project, model, x, lab_rows, picks, seed)
            strategy += CLASS_SAMPLE_SUFFIX
        strategy += BLENDED_SUFFIX if scorer is not None else ""

    fit = HeadFit(project=project, encoder=key, labels=labeled_now,
                  pseudo_labels=getattr(head, "pseudo_labels", 0), strategy=strategy,
                  kappa=kappa, trusted=trusted, ranked=len(picks),
                  stop_predictions=[int(v) for v in stop_predictions],
                  seconds=round(time.perf_counter() - started, 3))
    # the suggestions while this ranking stands: a fitted head's (blended), never the
    # scorer's alone (the labeling page shows that one as zero-shot: services/zero_shot.py)
    proba = (model.predict_proba(x[[p.index for p in picks]])
             if head is not None and head.model is not None and picks else None)
    if _write(project, fit, picks, ids, proba) is None:
        return {"skipped": "a fit on more labels ranked meanwhile"}
    if embedded < Item.objects.filter(project=project, split=Item.Split.POOL).count():
        pool_embed_start(project_id=project.pk)  # items arrived since: embed them too
    logger.info("%s ranked %s items in %.2fs (zero-shot weight %.2f)", fit, len(picks),
                fit.seconds, weight)
    return {"fit": fit.pk, "ranked": len(picks), "strategy": strategy, "labels": labeled_now,
            "zero_shot_weight": round(weight, 3), "seconds": fit.seconds}
