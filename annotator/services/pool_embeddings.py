"""An embedding of every pool item, computed once per encoder and kept in artifacts storage.

The fast loop's head (annotator/services/fast_loop.py) reads them after every few labels,
so no re-rank waits for a model. The encoder is the project's base model (mean-pooled
last hidden state, as multilingual-e5 was trained): its embeddings do not change when a
fine-tune lands, so a 100k pool is embedded once, not after every version; items that
arrive later are embedded by the same chunk tasks.

Layout: embeddings/<project id>-<created>/<encoder key>/<first id>.npz holding `ids` (int64) and
`emb` (float16), one file per chunk of EMBED_CHUNK_SIZE items, so chunk tasks are idempotent
and N scoring workers share a pool. A file cut short by a killed worker is unreadable: it is
skipped when loading and written again by the next chunk task.
"""

import io
import logging
import re
import zipfile

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile

from annotator.ml.artifacts import artifacts_storage
from annotator.models import Item, Project
from annotator.queueing import enqueue_on_commit

logger = logging.getLogger(__name__)


def encoder_key(project: Project) -> str:
    """Names the embeddings' encoder: a different model or length is a different store."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", project.effective_model_name).strip("_")
    return f"{name[-80:]}-{project.max_length_or_cap}"


def _folder(project: Project, key: str) -> str:
    # created_at too: ids come back after a database is restored or rolled back (tests)
    return f"embeddings/{project.pk}-{project.created_at:%Y%m%dT%H%M%S%f}/{key}"


def _pool_ids(project: Project) -> list[int]:
    return list(Item.objects.filter(project=project, split=Item.Split.POOL)
                .order_by("pk").values_list("pk", flat=True))


def chunk_files(project: Project, key: str) -> list[str]:
    folder = _folder(project, key)
    # no exists(folder) first: an object store has no folders, exists() says False there
    try:
        _, files = artifacts_storage().listdir(folder)
    except FileNotFoundError:  # a folder storage before the first chunk
        return []
    return sorted(f"{folder}/{name}" for name in files if name.endswith(".npz"))


FILES_CACHE_SECONDS = 10  # how long a listing of chunk files is trusted (shared cache)


def chunk_files_cached(project: Project, key: str) -> list[str]:
    """chunk_files, listed at most once per FILES_CACHE_SECONDS for every process (a search or
    a labeling page asks often; an object store's listing is slow)."""
    cache_key = f"embedding-files:{project.pk}:{key}"
    files = cache.get(cache_key)
    if files is None:
        files = chunk_files(project, key)
        cache.set(cache_key, files, FILES_CACHE_SECONDS)
    return files


def read_chunk(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, emb) of a chunk file; None when it is unreadable (a write cut short)."""
    try:
        with artifacts_storage().open(name, "rb") as f:
            data = np.load(io.BytesIO(f.read()), allow_pickle=False)
            return data["ids"], data["emb"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        logger.warning("unreadable embedding chunk %s: it will be embedded again", name)
        return None


def embeddings_load(project: Project, key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, embeddings float32) of every item embedded so far by the project's encoder."""
    chunks = [c for c in map(read_chunk, chunk_files(project, key or encoder_key(project)))
              if c is not None]
    if not chunks:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return (np.concatenate([ids for ids, _ in chunks]),
            np.concatenate([emb for _, emb in chunks]).astype(np.float32))


def _embedded_ids(project: Project, key: str) -> set[int]:
    found: set[int] = set()
    for chunk in map(read_chunk, chunk_files(project, key)):
        if chunk is not None:
            found.update(chunk[0].tolist())
    return found


def missing_ids(project: Project) -> list[int]:
    """Pool items of the project without an embedding from its encoder."""
    done = _embedded_ids(project, encoder_key(project))
    return [i for i in _pool_ids(project) if i not in done]


def pool_embed_start(*, project_id: int) -> dict:
    """Enqueue one embed_chunk_task per chunk of items not embedded yet (queue "bulk").

    Idempotent: chunks already written are not enqueued, nor (for EMBED_PENDING_SECONDS, a
    mark in the shared cache) chunks any process enqueued already and that are still waiting
    (a fit asks again every few seconds while a big pool is being embedded); a chunk
    enqueued twice writes once.
    """
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"skipped": "no project"}
    key, missing = encoder_key(project), missing_ids(project)
    size = max(1, settings.EMBED_CHUNK_SIZE)
    chunks = [chunk for chunk in (missing[k:k + size] for k in range(0, len(missing), size))
              if cache.add(f"embed-pending:{project.pk}:{key}:{chunk[0]}:{len(chunk)}", True,
                           timeout=settings.EMBED_PENDING_SECONDS)]
    for chunk in chunks:
        enqueue_on_commit("annotator.tasks.embed_chunk_task", project_id, key, chunk)
    return {"chunks": len(chunks), "items": len(missing)}


def embeddings_write(project: Project, key: str, ids: list[int], emb: np.ndarray) -> str:
    """Store one chunk (float16)."""
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.asarray(ids, dtype=np.int64),
             emb=np.asarray(emb, dtype=np.float16).reshape(len(ids), -1))
    name = f"{_folder(project, key)}/{ids[0]}.npz"
    return artifacts_storage().save(name, ContentFile(buffer.getvalue()))


def pool_embed_chunk(*, project_id: int, key: str, item_ids: list[int]) -> dict:
    """Embed one chunk with the project's base encoder and write its file; then, the chunk
    that leaves nothing missing asks the fast loop for a re-rank."""
    from trainer.predict import embed_with_base

    project = Project.objects.filter(pk=project_id).first()
    if project is None or key != encoder_key(project) or not item_ids:
        return {"skipped": "no project, or its encoder changed"}
    name = f"{_folder(project, key)}/{item_ids[0]}.npz"
    storage = artifacts_storage()
    if storage.exists(name):
        if read_chunk(name) is not None:
            return {"skipped": "chunk already embedded"}
        storage.delete(name)
    texts = dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "text"))
    ids = [i for i in item_ids if i in texts]  # deleted meanwhile: nothing to embed
    emb = embed_with_base([texts[i] for i in ids], model_name=project.effective_model_name,
                          max_length=project.max_length_or_cap,
                          device=settings.TRAINING_DEVICE)
    embeddings_write(project, key, ids, emb)
    if not missing_ids(project):
        # the fast loop's re-rank (head_rerank_task, forced: the pool is complete), named
        # here: fast_loop reads this module's embeddings, so importing it would be a circle
        enqueue_on_commit("annotator.tasks.head_rerank_task", project_id, True)
        enqueue_on_commit("annotator.tasks.near_duplicates_task", project_id)
    return {"embedded": len(ids)}
