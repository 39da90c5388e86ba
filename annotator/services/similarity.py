"""Search by meaning and "more like this": the nearest pool items to a typed query or to an
item, by the embeddings the fast loop already stores (services/pool_embeddings.py).

Where the PostgreSQL server has pgvector, its HNSW index answers (services/pgvector_index.py,
detected at run time). Everywhere else, and whenever that module does not answer, the exact
index: every embedded pool item's vector, normalised, in one float32 .npy file under
VAR_DIR/cache/vectors/, memory-mapped by every process on the machine (the operating system's
page cache holds one copy, whichever web or worker process built it). Its name carries the
chunk files it was built from, so new embeddings make a new file at the next search; a
machine that has none builds it from the artifacts storage. An exact matrix product finds the
nearest items (docs/search.md has the measurements).
"""

import functools
import hashlib
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from annotator.models import Item, Project
from annotator.services import pgvector_index
from annotator.services.pool_embeddings import chunk_files_cached, encoder_key, read_chunk

MAX_QUERY_CHARS = 500
MAX_RESULTS = 500
_indexes: dict[str, "VectorIndex"] = {}  # this process's open memory maps, by file
_lock = threading.Lock()


class NotSearchable(ValueError):
    """The query or the item cannot be searched by meaning; the message says why."""


@dataclass(frozen=True)
class VectorIndex:
    ids: np.ndarray  # int64, the items in the order of the rows
    vectors: np.ndarray  # float32, one normalised row per item (memory-mapped)

    def row_of(self, item_id: int) -> int | None:
        found = np.flatnonzero(self.ids == item_id)
        return int(found[0]) if len(found) else None

    def nearest(self, vector: np.ndarray, *, k: int, exclude: int | None = None
                ) -> list[tuple[int, float]]:
        """The k rows most like `vector` (cosine), best first, as (item id, similarity)."""
        if not len(self.ids):
            return []
        scores = self.vectors @ vector.astype(np.float32)
        if exclude is not None:
            scores[self.ids == exclude] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def _build(files: list[str], target: Path) -> None:
    chunks = [chunk for chunk in map(read_chunk, files) if chunk is not None]
    ids = np.concatenate([c[0] for c in chunks]).astype(np.int64)
    vectors = np.concatenate([c[1] for c in chunks]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix, array in ((".vec.npy", vectors), (".ids.npy", ids)):  # ids last: complete
        partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
        with open(partial, "wb") as out:
            np.save(out, array)
        os.replace(partial, target.with_name(target.name + suffix))


def _forget_older(base: Path, project: Project) -> None:
    """Delete the project's earlier index files (a process that maps one keeps reading it:
    an unlinked file lives until its last map is gone)."""
    for old in base.parent.glob(f"{project.pk}-*"):
        if not old.name.startswith(base.name):
            old.unlink(missing_ok=True)


def _searchable_files(project: Project) -> tuple[str, list[str]]:
    key = encoder_key(project)
    files = chunk_files_cached(project, key)
    if not files:
        raise NotSearchable("no item of this project has an embedding yet: they are computed "
                            "in the background after an import (the fast loop's pool "
                            "embeddings); try again in a few minutes")
    return key, files


def _mapped_index(project: Project, key: str, files: list[str]) -> VectorIndex:
    digest = hashlib.sha256("\n".join([key, *files]).encode()).hexdigest()[:24]
    base = Path(settings.VAR_DIR) / "cache" / "vectors" / f"{project.pk}-{digest}"
    with _lock:
        if str(base) in _indexes:
            return _indexes[str(base)]
        if not base.with_name(base.name + ".ids.npy").exists():
            _build(files, base)
            _forget_older(base, project)
        index = VectorIndex(ids=np.load(base.with_name(base.name + ".ids.npy")),
                            vectors=np.load(base.with_name(base.name + ".vec.npy"),
                                            mmap_mode="r"))
        _indexes.clear()  # one open index per process is plenty (the page cache is shared)
        _indexes[str(base)] = index
        return index


def vector_index(project: Project) -> VectorIndex:
    """The project's exact index; NotSearchable while none of its pool is embedded. Where
    the database has pgvector, its rows are brought up to date from the same files, however
    many are missing: the bulk worker's near-duplicate pass (services/near_duplicates.py)
    calls this when a pool's embeddings are complete, so searches need not wait for them."""
    key, files = _searchable_files(project)
    index = _mapped_index(project, key, files)
    pgvector_index.project_sync(project_id=project.pk, key=key, files=files)
    return index


_encoder_lock = threading.Lock()


def _encoder(model_name: str):
    with _encoder_lock:  # one load, whether a warm-up thread or a request asks first
        return _load_encoder(model_name)


@functools.lru_cache(maxsize=2)
def _load_encoder(model_name: str):
    from trainer.predict import load_base_encoder

    return load_base_encoder(model_name, device=settings.TRAINING_DEVICE)


def encoder_warm(project: Project) -> None:
    """Load the project's encoder in the background (the Find page asks on arrival): the
    first typed query of a process then does not wait the 10-25 s a load takes."""
    if not settings.SEARCH_WARM_ENCODER or not chunk_files_cached(project, encoder_key(project)):
        return
    threading.Thread(target=_encoder, args=(project.effective_model_name,), daemon=True).start()


def query_problem(text: str) -> str | None:
    """Why a typed query cannot be searched by meaning, or None."""
    if not text.strip():
        return "type a few words to search by meaning"
    if len(text) > MAX_QUERY_CHARS:
        return f"a query has at most {MAX_QUERY_CHARS} characters (this one has {len(text):,})"
    if not re.search(r"\w", text):
        return "the query has no letters or digits to search by"
    return None


def query_vector(project: Project, text: str) -> np.ndarray:
    """The typed query embedded as the pool was (the project's base encoder, mean pooled)."""
    from trainer.predict import embed

    tokenizer, model, device = _encoder(project.effective_model_name)
    vector = embed(model, tokenizer, [text], max_length=project.max_length_or_cap,
                   device=device)[0]
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def similar_to_text(*, project: Project, text: str, k: int = 50) -> list[tuple[int, float]]:
    """Pool items nearest to a typed query (any language the encoder reads)."""
    problem = query_problem(text)
    if problem:
        raise NotSearchable(problem)
    key, files = _searchable_files(project)
    vector, k = query_vector(project, text.strip()), min(k, MAX_RESULTS)
    found = pgvector_index.nearest(project_id=project.pk, key=key, files=files, k=k,
                                   vector=vector)
    if found is not None:
        return found
    return _mapped_index(project, key, files).nearest(vector, k=k)


NO_EMBEDDING = ("this item has no embedding yet (a new item is embedded in the background "
                "within minutes; gold items are not embedded)")


def similar_to_item(*, project: Project, item: Item, k: int = 50) -> list[tuple[int, float]]:
    """Pool items nearest to `item` (itself left out)."""
    key, files = _searchable_files(project)
    k = min(k, MAX_RESULTS)
    try:
        found = pgvector_index.nearest(project_id=project.pk, key=key, files=files, k=k,
                                       item_id=item.pk)
    except pgvector_index.NotIndexed:
        raise NotSearchable(NO_EMBEDDING) from None
    if found is not None:
        return found
    index = _mapped_index(project, key, files)
    row = index.row_of(item.pk)
    if row is None:
        raise NotSearchable(NO_EMBEDDING)
    return index.nearest(np.asarray(index.vectors[row]), k=k, exclude=item.pk)
