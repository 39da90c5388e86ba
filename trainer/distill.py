"""Distillation for serving: a shallower copy of a version learns that version's predictions.

The teacher (a fine-tuned version) scores a pool of texts, the project's unlabeled items
included. The student starts as the teacher itself with only its bottom `layers` blocks
(embeddings, pooler and head kept): dropping the top layers kept the most quality among
the layer-dropping schemes in "Poor Man's BERT" (Sajjad et al., 2020). It learns to match
the teacher's softened probabilities (KL divergence at temperature T, Hinton et al., 2015),
plus cross-entropy on the human labels where there are some. The student is saved as a
plain version folder, so ONNX export, pool scoring and the prediction API take it as they
take any version; it is several times cheaper per text (docs/bench/distillation.md).
"""

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from trainer.data import bucketed_batches, class_weights, encode_labels, pad_batch
from trainer.evaluate import classification_metrics
from trainer.models import is_lora_version, load_classifier, pick_device
from trainer.predict import predict_proba
from trainer.train import optimizer_step

logger = logging.getLogger(__name__)


@dataclass
class DistillConfig:
    layers: int = 4  # encoder blocks the student keeps (the bottom ones)
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-4
    temperature: float = 2.0
    # weight of the cross-entropy on human labels against the KL to the teacher (1 - this)
    label_weight: float = 0.5
    class_weighting: bool = True  # that cross-entropy class-weighted, as trainer.train does
    seed: int = 42
    device: str = ""  # "" = cuda when available, else cpu
    num_threads: int | None = None
    max_steps: int | None = None  # cap on optimizer steps (tiny tests)


@dataclass
class DistillResult:
    metrics: dict  # the student on the evaluation texts ({} without them)
    teacher_metrics: dict  # the teacher on the same texts
    agreement: float | None  # share of evaluation texts where student and teacher agree
    duration_seconds: float
    device: str
    layers: int
    teacher_layers: int
    num_pool: int
    max_length: int
    history: list[dict] = field(default_factory=list)


def _encoder_blocks(model):
    """The ModuleList of transformer blocks (BERT, RoBERTa/XLM-R, ELECTRA-style encoders)."""
    encoder = getattr(model.base_model, "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if blocks is None:
        raise ValueError(f"cannot drop layers of a {type(model.base_model).__name__}: "
                         "distillation needs an encoder with encoder.layer blocks")
    return encoder, blocks


def truncated_copy(model, layers: int):
    """A deep copy of `model` keeping its bottom `layers` encoder blocks."""
    import copy

    import torch

    student = copy.deepcopy(model)
    encoder, blocks = _encoder_blocks(student)
    if not 1 <= layers < len(blocks):
        raise ValueError(f"a student keeps 1 to {len(blocks) - 1} of the teacher's "
                         f"{len(blocks)} layers, not {layers}")
    encoder.layer = torch.nn.ModuleList(list(blocks)[:layers])
    student.config.num_hidden_layers = layers
    return student


def soft_targets(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from probabilities: p ** (1/T), renormalized."""
    sharpened = np.power(np.clip(proba, 1e-12, 1.0), 1.0 / temperature)
    return sharpened / sharpened.sum(axis=1, keepdims=True)


def _teacher_max_length(teacher_dir: Path, tokenizer) -> int:
    summary = teacher_dir / "training.json"
    if summary.exists():
        recorded = json.loads(summary.read_text()).get("config", {}).get("max_length")
        if recorded:
            return int(recorded)
    return min(tokenizer.model_max_length or 128, 128)


def distill(
    *,
    teacher_dir: str | Path,
    pool_texts: Sequence[str],
    output_dir: str | Path,
    config: DistillConfig,
    labeled_texts: Sequence[str] = (),
    labels: Sequence = (),
    eval_texts: Sequence[str] | None = None,
    eval_labels: Sequence | None = None,
    teacher_proba: np.ndarray | None = None,
    progress: Callable[[dict], None] | None = None,
) -> DistillResult:
    """Train a `config.layers`-block student on the teacher's predictions over labeled_texts
    + pool_texts (the labeled ones also on their human labels); save it into output_dir with
    a training.json that names the teacher. Evaluated beside the teacher on eval_texts.

    teacher_proba: the teacher's probabilities for labeled_texts + pool_texts in that order,
    where they are at hand (the platform stores the active version's pool scores); else the
    teacher scores them here.
    """
    import torch
    import torch.nn.functional as F
    from transformers import get_linear_schedule_with_warmup

    teacher_dir = Path(teacher_dir)
    if is_lora_version(teacher_dir):
        logger.info("the LoRA teacher %s is merged into its base first", teacher_dir)
    if len(labeled_texts) != len(labels):
        raise ValueError("need as many labels as labeled texts")
    texts = list(labeled_texts) + list(pool_texts)
    if not any(texts):
        raise ValueError("nothing to distill on: the pool is empty")
    if teacher_proba is not None and len(teacher_proba) != len(texts):
        raise ValueError(f"teacher_proba has {len(teacher_proba)} rows for {len(texts)} texts")
    device = pick_device(config.device)
    if device == "cpu" and config.num_threads:
        torch.set_num_threads(config.num_threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    tokenizer, teacher = load_classifier(str(teacher_dir), device=device)
    label_names = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    max_length = _teacher_max_length(teacher_dir, tokenizer)
    teacher_layers = len(_encoder_blocks(teacher)[1])
    started = time.perf_counter()
    if teacher_proba is None:
        teacher_proba = predict_proba(teacher, tokenizer, texts, max_length=max_length,
                                      device=device)
    targets = soft_targets(np.asarray(teacher_proba, dtype=np.float64), config.temperature)
    student = truncated_copy(teacher, config.layers).to(device)
    student.get_input_embeddings().weight.requires_grad_(False)
    human = np.full(len(texts), -1)
    human[:len(labels)] = encode_labels(labels, label_names)

    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    pad_id = tokenizer.pad_token_id or 0
    total_steps = -(-len(encoded) // config.batch_size) * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad],
                                  lr=config.learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)
    soft = torch.tensor(targets, dtype=torch.float32)
    human_t = torch.tensor(human)
    weight = None
    if config.class_weighting and len(labels):
        weight = torch.tensor(class_weights(human[human >= 0].tolist(), len(label_names)),
                              dtype=torch.float32, device=device)
    rng, history, step, t = random.Random(config.seed), [], 0, config.temperature
    for epoch in range(1, config.epochs + 1):
        student.train()
        for batch_idx in bucketed_batches([len(s) for s in encoded], config.batch_size, rng):
            if step >= total_steps:
                break
            batch = {k: v.to(device) for k, v in
                     pad_batch([encoded[i] for i in batch_idx], pad_id).items()}
            logits = student(**batch).logits.float()
            loss = F.kl_div(F.log_softmax(logits / t, dim=-1), soft[batch_idx].to(device),
                            reduction="batchmean") * t * t
            has_label = human_t[batch_idx] >= 0
            if config.label_weight and has_label.any():
                ce = F.cross_entropy(logits[has_label.to(device)],
                                     human_t[batch_idx][has_label].to(device), weight=weight)
                share = float(has_label.float().mean())  # labels weigh by their share of the batch
                loss = (1 - config.label_weight * share) * loss + config.label_weight * share * ce
            optimizer_step(student, loss, optimizer, scheduler)
            step += 1
            entry = {"epoch": epoch, "step": step, "loss": round(float(loss.item()), 5)}
            history.append(entry)
            if progress:
                progress({**entry, "epochs": config.epochs, "total_steps": total_steps})
        if step >= total_steps:
            break
    duration = time.perf_counter() - started
    student.eval()

    metrics, teacher_metrics, agreement = {}, {}, None
    if eval_texts:
        y = encode_labels(eval_labels, label_names)
        kwargs = dict(max_length=max_length, device=device)
        student_pred = predict_proba(student, tokenizer, list(eval_texts), **kwargs).argmax(1)
        teacher_pred = predict_proba(teacher, tokenizer, list(eval_texts), **kwargs).argmax(1)
        metrics = classification_metrics(y, student_pred.tolist(), label_names)
        teacher_metrics = classification_metrics(y, teacher_pred.tolist(), label_names)
        agreement = round(float((student_pred == teacher_pred).mean()), 4)

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    result = DistillResult(metrics=metrics, teacher_metrics=teacher_metrics, agreement=agreement,
                           duration_seconds=round(duration, 3), device=device,
                           layers=config.layers, teacher_layers=teacher_layers,
                           num_pool=len(texts), max_length=max_length, history=history)
    teacher_summary = teacher_dir / "training.json"
    teacher_config = (json.loads(teacher_summary.read_text()).get("config", {})
                      if teacher_summary.exists() else {})
    summary = {
        "config": {**teacher_config, "max_length": max_length},
        "distillation": {**asdict(config), "teacher": str(teacher_dir),
                         "teacher_layers": teacher_layers, "num_pool": len(texts),
                         "num_labeled": len(labels), "agreement": agreement,
                         "teacher_metrics": teacher_metrics},
        "label_names": label_names,
        "label2id": {name: i for i, name in enumerate(label_names)},
        "num_labels": len(label_names),
        "metrics": metrics,
        "duration_seconds": result.duration_seconds,
        "device": device,
        "history": history,
    }
    (output_dir / "training.json").write_text(json.dumps(summary, indent=1))
    return result
