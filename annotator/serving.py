"""The active model of each project, held in the serving process for the prediction API.

Nothing is loaded at import or in apps.py: a project's model is loaded by the first request
that needs it and kept per project. Every request asks the database for the project's
active ModelVersion id (one query on the partial unique index); when it changed, one thread
loads the new version while the other threads keep answering with the old one, then the
reference in the cache is replaced in one assignment. A request holds the object it started
with, so requests in flight finish on the old model and nothing is dropped; the old model is
freed when the last of them returns.

CPU inference through trainer.scoring (length-sorted batches, torch.inference_mode), with
optional int8 dynamic quantization (settings.SERVE_INT8 / ANNOTATOR_SERVE_INT8). With
ANNOTATOR_SERVE_RUNTIME=onnx (needs the `onnx` extra: onnxruntime, onnx) the version is
exported to ONNX once per machine (cached under VAR_DIR/model-cache/onnx) and run by
ONNX Runtime, int8-quantized when SERVE_INT8 is on: about 1.3x torch's int8 on CPU.
"""

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

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
        from trainer.scoring import predict_proba

        max_length = max_length or self.max_length
        if isinstance(self.model, OnnxClassifier):
            proba = self.model.predict_proba(self.tokenizer, texts, max_length=max_length)
        else:
            proba = predict_proba(self.model, self.tokenizer, texts, batch_size=BATCH_SIZE,
                                  max_length=max_length, device="cpu")
        results = []
        for row in proba.tolist():
            probabilities = {name: round(p, 6) for name, p in zip(self.label_names, row,
                                                                   strict=True)}
            results.append({"label": self.label_names[max(range(len(row)), key=row.__getitem__)],
                            "probabilities": probabilities})
        return results


class OnnxClassifier:
    """An ONNX Runtime session over an exported classifier: input ids, mask -> logits."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])

    def predict_proba(self, tokenizer, texts: list[str], *, max_length: int):
        import numpy as np

        ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        proba = None
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            width = max(len(ids[i]) for i in idx)
            batch = np.full((len(idx), width), tokenizer.pad_token_id or 0, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                batch[row, :len(ids[i])], mask[row, :len(ids[i])] = ids[i], 1
            logits = self.session.run(["logits"], {"input_ids": batch,
                                                   "attention_mask": mask})[0]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            if proba is None:
                proba = np.zeros((len(ids), logits.shape[1]), dtype=np.float32)
            proba[idx] = e / e.sum(axis=1, keepdims=True)
        return proba


def onnx_export(folder: Path, *, int8: bool) -> Path:
    """The version folder exported to ONNX (int8 when asked), once, under the model cache.

    Written to a temporary name and renamed, so concurrent processes never read a half file.
    """
    import torch

    from trainer.models import load_classifier

    weights = [(p.name, p.stat().st_size, p.stat().st_mtime_ns)
               for p in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))]
    key = hashlib.sha256(repr((str(folder.resolve()), weights)).encode()).hexdigest()[:16]
    target = Path(settings.VAR_DIR) / "model-cache" / "onnx" / key / (
        "model.int8.onnx" if int8 else "model.onnx")
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _, model = load_classifier(str(folder), device="cpu")

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    sample = torch.ones((2, 8), dtype=torch.long)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on constant shapes, exporter deprecation
        plain = Path(tmp) / "model.onnx"
        torch.onnx.export(Logits(model).eval(), (sample, sample), str(plain), dynamo=False,
                          opset_version=17, input_names=["input_ids", "attention_mask"],
                          output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "logits": {0: "batch"}})
        result = plain
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            result = Path(tmp) / "model.int8.onnx"
            logging.disable(logging.WARNING)  # the quantizer logs every tensor it skips
            try:
                quantize_dynamic(str(plain), str(result), weight_type=QuantType.QInt8)
            finally:
                logging.disable(logging.NOTSET)
        os.replace(result, target)
    return target


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

    from annotator.services.training import model_version_local_path
    from trainer.scoring import load_scorer

    if settings.SERVE_THREADS:
        torch.set_num_threads(settings.SERVE_THREADS)
    started = time.perf_counter()
    folder = model_version_local_path(version)
    if settings.SERVE_RUNTIME == "onnx":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = OnnxClassifier(onnx_export(folder, int8=settings.SERVE_INT8),
                               threads=settings.SERVE_THREADS)
    else:
        tokenizer, model = load_scorer(str(folder), device="cpu", quantize=settings.SERVE_INT8)
    logger.info("serving %s (%s, int8=%s), loaded in %.1fs", version, settings.SERVE_RUNTIME,
                settings.SERVE_INT8, time.perf_counter() - started)
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


def predict(*, project_id: int, texts: list[str]) -> dict:
    """{"model_version": n, "predictions": [...]} from the project's active model, reading
    texts with the max length that version was trained with."""
    served = served_model(project_id)
    return {"model_version": served.version, "predictions": served.predict(texts)}


def clear() -> None:
    """Forget every loaded model (tests)."""
    _models.clear()
    _failed.clear()
