"""The CPU inference path: a saved version exported once to ONNX, run by ONNX Runtime.

One graph per version gives both outputs the platform needs from a forward pass:
`logits` (class scores) and `embedding` (the mean of the last hidden state over real
tokens, what the selection strategies use). The export is cached per machine under
<model dir>/onnx/<weights hash>/; a second load of the same version reuses the file.

fp32 by default: int8 (dynamic quantization of the MatMuls) is about 1.5x faster per
CPU-second but moves the probabilities of multilingual-e5-small by up to 0.1-0.3 on real
reviews (docs/bench/serving.md), over the 0.01 the platform allows; it is opt-in
(load_scorer(quantize=True): ANNOTATOR_SCORING_INT8 / ANNOTATOR_SERVE_INT8).

Texts are tokenized once, sorted by length and padded per batch (length buckets), so a
batch of short reviews is not padded to the longest review of the pool.

ANNOTATOR_INFERENCE picks the runtime on CPU: "onnx" (the default) or "torch" (opt out:
the PyTorch model, as before). On CUDA the PyTorch model is always used
(trainer.predict.load_scorer).
"""

import functools
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RUNTIMES = ("onnx", "torch")
EXPORT_FORMAT = 2  # bump when the exported graph changes: old cache entries are not reused
OUTPUTS = ["logits", "embedding"]


def runtime(name: str = "") -> str:
    """The inference runtime: `name`, else ANNOTATOR_INFERENCE, else "onnx"."""
    name = name or os.environ.get("ANNOTATOR_INFERENCE", "") or "onnx"
    if name not in RUNTIMES:
        raise ValueError(f"unknown inference runtime {name!r} (one of {', '.join(RUNTIMES)})")
    return name


def onnx_cache_dir() -> Path:
    from trainer.models import model_cache_dir

    return model_cache_dir() / "onnx"


def _cache_key(folder: Path) -> str:
    """A hash of the weights' bytes: the same version copied elsewhere reuses its export,
    a retrain into the same path does not."""
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    return _weights_digest(tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                                 for p in files))


@functools.lru_cache(maxsize=64)
def _weights_digest(files: tuple) -> str:
    """Hashed once per process per (path, size, mtime): pool chunks do not re-read 470 MB."""
    digest = hashlib.sha256(f"format {EXPORT_FORMAT}".encode())
    for path, _, _ in files:
        with open(path, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:16]


def export_onnx(folder, cache_dir=None, int8: bool = False) -> Path:
    """The saved classifier in `folder` as an ONNX file (int8 when asked), exported once.

    Written under a temporary name and renamed, so concurrent processes never read a half
    file; two processes exporting at once both succeed (the last rename wins, same bytes).
    """
    folder = Path(folder)
    target = Path(cache_dir or onnx_cache_dir()) / _cache_key(folder) / (
        "model.int8.onnx" if int8 else "model.onnx")
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        plain = Path(tmp) / "model.onnx"
        _export_fp32(folder, plain)
        result = plain
        if int8:
            result = Path(tmp) / "model.int8.onnx"
            _quantize(plain, result)
        os.replace(result, target)
    return target


def _export_fp32(folder: Path, out: Path) -> None:
    import torch

    from trainer.models import load_classifier

    _, model = load_classifier(str(folder), device="cpu")

    class LogitsAndEmbedding(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             output_hidden_states=True)
            mask = attention_mask.unsqueeze(-1).to(out.hidden_states[-1].dtype)
            pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)
            return out.logits, pooled

    sample = torch.ones((2, 8), dtype=torch.long)
    batch_axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on constant shapes, exporter deprecation
        torch.onnx.export(LogitsAndEmbedding(model).eval(), (sample, sample), str(out),
                          dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=OUTPUTS,
                          dynamic_axes={"input_ids": batch_axes, "attention_mask": batch_axes,
                                        "logits": {0: "batch"}, "embedding": {0: "batch"}})


def _quantize(plain: Path, out: Path) -> None:
    """Dynamic int8 of the MatMuls (the word-embedding table stays fp32). Per-channel weights,
    reduce_range and leaving the feed-forward outputs in fp32 were tried: none brought e5
    within 0.01 of fp32 (docs/bench/serving.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantizer logs every tensor it skips
    try:
        quantize_dynamic(str(plain), str(out), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])
    finally:
        logging.disable(logging.NOTSET)


class OnnxScorer:
    """An ONNX Runtime session over an exported classifier: (ids, mask) -> logits, embedding.

    Used wherever trainer.predict takes a model; `config` is the saved version's config.
    """

    def __init__(self, path, *, config=None, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.config = config
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        """(logits, embedding) of one padded batch."""
        return self.session.run(OUTPUTS, {"input_ids": input_ids,
                                          "attention_mask": attention_mask})


def length_batches(encoded: Sequence[Sequence[int]], batch_size: int):
    """Index lists of texts of similar length: sorted by token count, cut into batches."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids and attention mask, padded to the longest row."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for n, row in enumerate(rows):
        ids[n, :len(row)], mask[n, :len(row)] = row, 1
    return ids, mask


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def onnx_forward(scorer: OnnxScorer, tokenizer, texts: Sequence[str], *, batch_size: int,
                 max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and embeddings, in the order of texts, from length-bucketed batches."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    proba = emb = None
    for idx in length_batches(encoded, batch_size):
        logits, pooled = scorer.run(*pad([encoded[i] for i in idx], tokenizer.pad_token_id or 0))
        if proba is None:
            proba = np.zeros((len(encoded), logits.shape[1]), dtype=np.float32)
            emb = np.zeros((len(encoded), pooled.shape[1]), dtype=np.float32)
        proba[idx], emb[idx] = softmax(logits), pooled
    return proba, emb


def load_onnx_scorer(path, *, int8: bool = False, cache_dir=None, threads: int = 0):
    """(tokenizer, OnnxScorer) of a saved version, exporting it first if not cached."""
    from transformers import AutoConfig, AutoTokenizer

    from trainer.models import offline_kwargs

    kwargs = offline_kwargs(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    config = AutoConfig.from_pretrained(str(path), **kwargs)
    scorer = OnnxScorer(export_onnx(path, cache_dir, int8=int8), config=config, threads=threads)
    return tokenizer, scorer
