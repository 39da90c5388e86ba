"""The active model of each project, held in the serving process for the prediction API.

Nothing is loaded at import or in apps.py: a project's model is loaded by the first request
that needs it and kept per project. Every request asks the database for the project's
active ModelVersion id (one query on the partial unique index); when it changed, one thread
loads the new version while the other threads keep answering with the old one, then the
reference in the cache is replaced in one assignment. A request holds the object it started
with, so requests in flight finish on the old model and nothing is dropped; the old model is
freed when the last of them returns.

Inference is the platform's one path (trainer.predict.load_scorer / predict_proba, the same
as pool scoring): on CPU the version exported once to ONNX (cached under the model dir) and
run by ONNX Runtime in length-sorted batches. ANNOTATOR_SERVE_RUNTIME overrides
ANNOTATOR_INFERENCE for the API ("onnx" or "torch"); ANNOTATOR_SERVE_INT8 asks for int8
(faster, costs accuracy on e5); ANNOTATOR_SERVE_THREADS: threads per serving process
(0 = the runtime's default).
"""

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache

from annotator.models import ModelVersion

logger = logging.getLogger(__name__)

RETRY_FAILED_LOAD_SECONDS = 30.0
BATCH_SIZE = 32


class NoActiveModel(Exception):
    """The project has no active model version (nothing trained or activated yet)."""


class ModelUnavailable(Exception):
    """The active version could not be loaded and there is no older one to answer with.

    The message has the cause (for logs); `version` is the number, for answers to clients.
    """

    def __init__(self, message: str, *, version: int | None = None):
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class ServedModel:
    version_id: int
    version: int
    label_names: list[str]
    tokenizer: Any
    model: Any
    max_length: int = 128  # as the version was trained

    def predict(self, texts: list[str], *, max_length: int | None = None) -> list[dict]:
        """[{"label", "probabilities": {label: p}}] in the order of texts."""
        from trainer.predict import predict_proba

        max_length = max_length or self.max_length
        proba = predict_proba(self.model, self.tokenizer, texts, batch_size=BATCH_SIZE,
                              max_length=max_length, device="cpu")
        results = []
        for row in proba.tolist():
            probabilities = {name: round(p, 6) for name, p in zip(self.label_names, row,
                                                                   strict=True)}
            results.append({"label": self.label_names[max(range(len(row)), key=row.__getitem__)],
                            "probabilities": probabilities})
        return results

    def explain(self, text: str) -> dict:
        """The words that pushed the predicted label of `text` (trainer.explain: occlusion)."""
        from trainer.explain import explain

        found = explain(self.model, self.tokenizer, text, max_length=self.max_length,
                        max_words=settings.EXPLAIN_MAX_WORDS,
                        max_tokens=settings.EXPLAIN_MAX_TOKENS or None)
        found = found.to_dict()
        return {"label": self.label_names[found["label_index"]], "text": text,
                "truncated": found["truncated"], "words": found["words"]}


_models: dict[int, ServedModel] = {}  # project id -> the model answering now
_load_locks: dict[int, threading.Lock] = {}  # one loader per project at a time
_failed: dict[int, tuple[int, float]] = {}  # project id -> (version id, when its load failed)
_guard = threading.Lock()


def _load_lock(project_id: int) -> threading.Lock:
    with _guard:
        return _load_locks.setdefault(project_id, threading.Lock())


def _saved_label_names(folder: Path) -> list[str]:
    id2label = json.loads((folder / "config.json").read_text())["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


def _load(version: ModelVersion) -> ServedModel:
    import torch

    from annotator.ml.artifacts import model_version_local_path
    from trainer.predict import load_scorer

    if settings.SERVE_THREADS:
        torch.set_num_threads(settings.SERVE_THREADS)
    started = time.perf_counter()
    folder = model_version_local_path(version)
    tokenizer, model = load_scorer(str(folder), device="cpu", quantize=settings.SERVE_INT8,
                                   runtime=settings.SERVE_RUNTIME, threads=settings.SERVE_THREADS)
    logger.info("serving %s (%s), loaded in %.1fs", version, type(model).__name__,
                time.perf_counter() - started)
    names = version.label_names or _saved_label_names(folder)
    return ServedModel(version_id=version.id, version=version.version, label_names=list(names),
                       tokenizer=tokenizer, model=model, max_length=version.max_length)


def served_model(project_id: int) -> ServedModel:
    """The model to answer with for the project's active version (loaded when needed)."""
    active_id = (ModelVersion.objects.filter(project_id=project_id, is_active=True)
                 .order_by().values_list("id", flat=True).first())
    if active_id is None:
        _models.pop(project_id, None)
        raise NoActiveModel(f"project {project_id} has no active model version")
    current = _models.get(project_id)
    if current is not None and current.version_id == active_id:
        return current
    lock = _load_lock(project_id)
    if current is not None:
        failed = _failed.get(project_id)
        recently_failed = (failed and failed[0] == active_id
                           and time.monotonic() - failed[1] < RETRY_FAILED_LOAD_SECONDS)
        if recently_failed or not lock.acquire(blocking=False):
            # another thread is loading the new version (or it just failed): keep answering
            return _models.get(project_id, current)
    else:
        lock.acquire()
    try:
        current = _models.get(project_id)
        if current is not None and current.version_id == active_id:
            return current  # loaded by another thread while we waited
        try:
            fresh = _load(ModelVersion.objects.get(id=active_id))
        except Exception as exc:
            logger.exception("cannot load model version %s of project %s", active_id, project_id)
            _failed[project_id] = (active_id, time.monotonic())
            if current is None:
                number = (ModelVersion.objects.filter(id=active_id)
                          .values_list("version", flat=True).first())
                raise ModelUnavailable(f"model version {number} cannot be loaded: {exc}",
                                       version=number) from exc
            return current
        _models[project_id] = fresh  # the swap: one reference assignment
        _failed.pop(project_id, None)
        return fresh
    finally:
        lock.release()


def predict(*, project_id: int, texts: list[str], explain: bool = False) -> dict:
    """{"model_version": n, "predictions": [...]} from the project's active model, reading
    texts with the max length that version was trained with; with `explain`, each prediction
    says which words pushed it."""
    served = served_model(project_id)
    predictions = served.predict(texts)
    if explain:
        for prediction, text in zip(predictions, texts, strict=True):
            prediction["explanation"] = served.explain(text)
    return {"model_version": served.version, "predictions": predictions}


def explain_item(*, project_id: int, item_id: int, text: str) -> dict:
    """The active model's probabilities for an item and the words that pushed its label.

    Cached per version and text (an explanation costs one forward pass per word, seconds on
    CPU): pressing "why" again, or another admin opening the item, answers at once.
    """
    served = served_model(project_id)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    key = f"explanation:{served.version_id}:{item_id}:{digest}"
    found = cache.get(key)
    if found is None:
        found = {"model_version": served.version,
                 "probabilities": served.predict([text])[0]["probabilities"],
                 **served.explain(text)}
        cache.set(key, found, timeout=24 * 3600)
    return found


def clear() -> None:
    """Forget every loaded model (tests)."""
    _models.clear()
    _failed.clear()
