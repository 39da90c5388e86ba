"""Run a saved version over texts: class probabilities and embeddings (the one prediction path).

Everything that predicts (pool scoring, embeddings, the prediction API) loads a version with
`load_scorer` and runs it here. On CPU that is an ONNX Runtime session exported once per
version (trainer.onnx_runtime); on CUDA, or with ANNOTATOR_INFERENCE=torch, the PyTorch model.
Texts are sorted by token length so each batch pads little, and put back in the caller's
order. One forward pass gives both the probabilities and the mean-pooled last hidden state
(for diversity and seeding).
"""

from collections.abc import Sequence

import numpy as np


def quantize_int8(model):
    """Dynamic int8 quantization of the Linear layers (CPU scoring only)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.ao.quantization warns it moves to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model.to("cpu"), {torch.nn.Linear},
                                                      dtype=torch.qint8)


def load_scorer(path: str, *, device: str = "", quantize: bool = False, runtime: str = "",
                threads: int = 0):
    """(tokenizer, model) of a saved version ready for scoring.

    On CPU a trainer.onnx_runtime.OnnxScorer (the version exported once, cached), unless the
    runtime ("" = ANNOTATOR_INFERENCE) is "torch"; on CUDA the PyTorch model. `quantize`:
    int8 on CPU (ONNX Runtime's or torch's dynamic quantization; costs accuracy on e5).
    `threads`: ONNX Runtime threads (0: its default).
    """
    from trainer import onnx_runtime
    from trainer.models import load_classifier, pick_device

    device = pick_device(device)
    if device == "cpu" and onnx_runtime.runtime(runtime) == "onnx":
        return onnx_runtime.load_onnx_scorer(path, int8=quantize, threads=threads)
    tokenizer, model = load_classifier(path, device=device)
    if quantize and device == "cpu":
        model = quantize_int8(model)
    return tokenizer, model


# GPU scoring: batches of up to this many (padded) tokens, length-sorted, at most this many
# texts; CPU keeps the caller's batch_size
ACCELERATOR_BATCH_TOKENS = 65_536
ACCELERATOR_MAX_BATCH = 1024
HALF_PRECISION = True  # fp16 autocast on the GPU (bench.gpu_check turns it off for fp32)


def _forward(model, tokenizer, texts, *, batch_size, max_length, device, want_proba,
             want_embeddings):
    from trainer.onnx_runtime import OnnxScorer, onnx_forward

    if isinstance(model, OnnxScorer):  # one graph gives both outputs: nothing to skip
        return onnx_forward(model, tokenizer, texts, batch_size=batch_size,
                            max_length=max_length)
    import torch

    from trainer.data import pad_batch

    device = device or str(next(model.parameters()).device)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    accelerator = device.startswith("cuda")
    if accelerator:
        batches = token_batches([len(encoded[i]) for i in order], ACCELERATOR_BATCH_TOKENS,
                                ACCELERATOR_MAX_BATCH)
    else:
        batches = [(start, min(start + batch_size, len(order)))
                   for start in range(0, len(order), batch_size)]
    probas, embs = [], []  # per batch, left on the device until the end (one sync)
    model.eval()
    with torch.inference_mode():
        for start, stop in batches:
            batch = pad_batch([encoded[i] for i in order[start:stop]], tokenizer.pad_token_id or 0)
            batch = {k: v.to(device, non_blocking=accelerator) for k, v in batch.items()}
            # fp16 rather than bf16: 3 more bits of mantissa keep probabilities within 0.01
            with torch.autocast("cuda", dtype=torch.float16,
                                enabled=accelerator and HALF_PRECISION):
                out = model(**batch, output_hidden_states=want_embeddings)
            if want_proba:
                probas.append(torch.softmax(out.logits.float(), dim=-1))
            if want_embeddings:
                hidden = (out.hidden_states[-1] if hasattr(out, "hidden_states")
                          and out.hidden_states is not None else out.last_hidden_state)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                embs.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float())
    return _in_text_order(probas, order), _in_text_order(embs, order)


def token_batches(sorted_lengths: list[int], max_tokens: int, max_batch: int
                  ) -> list[tuple[int, int]]:
    """(start, stop) slices of length-sorted texts: each batch as many texts as fit
    max_tokens once padded to its longest (at most max_batch)."""
    batches, start = [], 0
    while start < len(sorted_lengths):
        stop = start + 1
        while (stop < len(sorted_lengths) and stop - start < max_batch
               and sorted_lengths[stop] * (stop + 1 - start) <= max_tokens):
            stop += 1
        batches.append((start, stop))
        start = stop
    return batches


def _in_text_order(parts: list, order: list[int]) -> np.ndarray | None:
    if not parts:
        return None
    import torch

    rows = torch.cat(parts).cpu().numpy().astype(np.float32, copy=False)
    out = np.empty_like(rows)
    out[order] = rows
    return out


def predict_proba(model, tokenizer, texts: Sequence[str], *, batch_size: int = 64,
                  max_length: int = 128, device: str = "") -> np.ndarray:
    """Class probabilities, len(texts) x num_labels, in the order of texts."""
    if not texts:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    proba, _ = _forward(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                        device=device, want_proba=True, want_embeddings=False)
    return proba


def embed(model, tokenizer, texts: Sequence[str], *, batch_size: int = 64,
          max_length: int = 128, device: str = "") -> np.ndarray:
    """Mean-pooled last hidden state (padding masked out), len(texts) x hidden_size.

    Works with a classifier (uses its encoder's hidden states) or a bare encoder.
    """
    _, emb = _forward(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                      device=device, want_proba=False, want_embeddings=True)
    return emb if emb is not None else np.zeros((0, 0), dtype=np.float32)


def predict_and_embed(model, tokenizer, texts: Sequence[str], *, batch_size: int = 64,
                      max_length: int = 128, device: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and embeddings from the same forward pass."""
    return _forward(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                    device=device, want_proba=True, want_embeddings=True)


def embed_with_base(texts: Sequence[str], *, model_name: str = "", batch_size: int = 64,
                    max_length: int = 128, device: str = "", runtime: str = "") -> np.ndarray:
    """Embeddings from the base encoder (cold-start seeding, the fast loop's pool)."""
    tokenizer, model, device = load_base_encoder(model_name, device=device, runtime=runtime)
    return embed(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                 device=device)


def load_base_encoder(model_name: str = "", *, device: str = "", runtime: str = ""):
    """(tokenizer, model, device) of the base encoder, for `embed`.

    A local model folder goes through `load_scorer` like a version: on CPU the ONNX graph
    exported once per weights (its untrained head is ignored, the encoder is the same); a
    hub id, on CUDA or with runtime "torch", the PyTorch encoder.
    """
    from pathlib import Path

    from trainer.models import offline_kwargs, pick_device, resolve_model_name

    path = resolve_model_name(model_name)
    device = pick_device(device)
    if Path(path).is_dir():
        tokenizer, model = _quiet(lambda: load_scorer(path, device=device, runtime=runtime))
        return tokenizer, model, device
    from transformers import AutoModel, AutoTokenizer

    kwargs = offline_kwargs(path)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    return tokenizer, AutoModel.from_pretrained(path, **kwargs).to(device), device


def _quiet(load):
    """transformers warns that a base model's classifier head is new: true, and unused here."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return load()
    finally:
        hf_logging.set_verbosity(level)
