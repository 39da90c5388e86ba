"""Zero-shot in the product: each label's description against the pool's stored embeddings,
from the first item on (the scorer and its measurements: trainer/zero_shot.py,
docs/zero_shot.md).

Two users, one scorer:
- the fast loop (services/fast_loop.py) ranks the cold-start queue with it and blends it into
  the head while labels are few (`zero_shot_scorer`, in a worker: it may embed descriptions);
- the labeling page suggests its label for an item while no version is active
  (`zero_shot_suggestion`, in a web request: it never loads an encoder).

The descriptions' embeddings are computed in a worker (the fast loop's re-rank: when the
pool's embeddings are complete, after every few labels, and when a page found them missing)
and kept in the shared cache under a key made of the encoder and the description texts, so a
changed label set, description or encoder is a new key and nothing is ever stale (a read
is one cache get of a few kilobytes). A page's suggestion reads the item's stored embedding
from its chunk file (services/pool_embeddings.py): the first request that needs a chunk
scores all of its items and leaves the result in the shared cache (about 22 kB for 2,000
items), so later requests, in any process, cost one cache get. Only for the encoders the
scorer was measured with (trainer.zero_shot.encoder_measured: e5); any other project keeps
the k-means cold start and shows no zero-shot suggestion.
"""

import hashlib
import logging

import numpy as np
from django.conf import settings
from django.core.cache import cache

from annotator.models import Item, ModelVersion, Project
from annotator.queueing import enqueue_on_commit
from annotator.services.pool_embeddings import chunk_files_cached, encoder_key, read_chunk
from trainer.zero_shot import (
    DESCRIPTION_MAX_LENGTH,
    DESCRIPTION_PREFIX,
    ZeroShotScorer,
    describe,
    embed_descriptions,
    encoder_measured,
    zero_shot_proba,
)

logger = logging.getLogger(__name__)

PROVENANCE = "zero-shot, from the label descriptions"
KEEP_SECONDS = 30 * 24 * 3600  # the shared cache's copy; a worker embeds them again if evicted
ASK_AGAIN_SECONDS = 60  # a page that found them missing asks a worker at most this often


def zero_shot_applies(project: Project) -> bool:
    """Whether the scorer's measured prefix and temperature hold for the project's encoder."""
    return encoder_measured(project.effective_model_name)


def descriptions_key(project: Project) -> str:
    """The cache key of the project's description embeddings: the encoder and the texts it
    reads (label order included), nothing else."""
    text = "\n".join([project.effective_model_name, DESCRIPTION_PREFIX,
                      str(DESCRIPTION_MAX_LENGTH), *describe(project.label_set)])
    return "zero-shot-descriptions:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def description_embeddings(project: Project, *, compute: bool = False) -> np.ndarray | None:
    """The project's label descriptions embedded by its base encoder (labels x d, float32),
    from the shared cache or, with `compute` (workers only), the encoder."""
    key = descriptions_key(project)
    emb = cache.get(key)
    if emb is None and compute:
        emb = embed_descriptions(describe(project.label_set),
                                 model_name=project.effective_model_name,
                                 device=settings.TRAINING_DEVICE)
        cache.set(key, emb, KEEP_SECONDS)
    return None if emb is None else np.asarray(emb, dtype=np.float32)


def descriptions_prepare(project: Project) -> bool:
    """Embed the project's descriptions if they are not yet (a worker); False where the
    scorer does not apply to its encoder."""
    if not zero_shot_applies(project):
        return False
    return description_embeddings(project, compute=True) is not None


def zero_shot_scorer(project: Project, dimensions: int) -> ZeroShotScorer | None:
    """The project's zero-shot scorer for embeddings of `dimensions` (a worker: it embeds the
    descriptions if needed); None where it does not apply."""
    if not zero_shot_applies(project):
        return None
    emb = description_embeddings(project, compute=True)
    if emb is None or emb.ndim != 2 or emb.shape[1] != dimensions:
        logger.warning("zero-shot off for project %s: description embeddings %s, items %s",
                       project.pk, None if emb is None else emb.shape, dimensions)
        return None
    return ZeroShotScorer(emb)


def _ask_a_worker(project: Project) -> None:
    """The descriptions are missing (a new label set or description, an evicted key): the
    fast loop's forced re-rank embeds them; at most once per ASK_AGAIN_SECONDS."""
    if cache.add(f"zero-shot-asked:{descriptions_key(project)}", True, ASK_AGAIN_SECONDS):
        # the task by name (queueing): fast_loop imports this module
        enqueue_on_commit("annotator.tasks.head_rerank_task", project.pk, True)


def _first_id(name: str) -> int | None:
    stem = name.rpartition("/")[2].removesuffix(".npz")
    return int(stem) if stem.isdigit() else None


def _chunk_scored(name: str, descriptions: np.ndarray, digest: str):
    """(ids, label indices, confidences) of every item of one stored chunk of embeddings,
    scored once per chunk and description set for every process (a chunk's file never
    changes once readable); None if unreadable or of another width."""
    cache_key = f"zero-shot-chunk:{digest}:{hashlib.sha256(name.encode()).hexdigest()[:24]}"
    scored = cache.get(cache_key)
    if scored is None:
        chunk = read_chunk(name)
        if chunk is None or chunk[1].ndim != 2 or chunk[1].shape[1] != descriptions.shape[1]:
            return None
        proba = zero_shot_proba(chunk[1].astype(np.float32), descriptions)
        scored = (np.asarray(chunk[0], dtype=np.int64), proba.argmax(axis=1).astype(np.int16),
                  proba.max(axis=1).astype(np.float32))
        cache.set(cache_key, scored, KEEP_SECONDS)
    return scored


def item_zero_shot(project: Project, item_id: int,
                   descriptions: np.ndarray) -> tuple[int, float] | None:
    """(label index, probability) of the item's stored embedding against the descriptions;
    None without one. A chunk is named by its first id and holds the ids after it, so the
    item is looked up in the (at most two) chunks that start nearest below it."""
    digest = descriptions_key(project).rpartition(":")[2]
    starts = sorted(((first, name) for name in chunk_files_cached(project, encoder_key(project))
                     if (first := _first_id(name)) is not None and first <= item_id),
                    reverse=True)
    for _, name in starts[:2]:
        scored = _chunk_scored(name, descriptions, digest)
        if scored is None:
            continue
        ids, labels, confidence = scored
        hit = np.flatnonzero(ids == item_id)
        if len(hit):
            return int(labels[hit[0]]), float(confidence[hit[0]])
    return None


def zero_shot_suggestion(*, item: Item, manager: bool = False) -> dict | None:
    """The zero-shot label for `item` while its project has no active version, as the
    labeling page shows it (marked with its provenance: never a trained model's); None where
    the project hides suggestions (from labelers; a `manager` sees it anyway), on gold, for
    an item without a stored embedding, or while the descriptions are being embedded.

    Reads the cached description embeddings and the item's stored embedding (its chunk,
    scored once for every process): no encoder in the request, and no label of any item.
    """
    project = item.project
    if ((not project.show_suggestions and not manager) or item.split != Item.Split.POOL
            or not zero_shot_applies(project)
            or ModelVersion.objects.filter(project=project, is_active=True).exists()):
        return None
    descriptions = description_embeddings(project)
    if descriptions is None:
        _ask_a_worker(project)
        return None
    found = item_zero_shot(project, item.pk, descriptions)
    if found is None:
        return None
    best, confidence = found
    names = project.label_names
    if best >= len(names):
        return None
    return {"label": names[best], "confidence": round(confidence, 3),
            "source": "zero_shot", "provenance": PROVENANCE}
