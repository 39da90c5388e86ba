"""Fine-tune a BERT-family encoder for sequence classification."""

import copy
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import TrainConfig
from trainer.data import (
    MAX_LENGTH_CAP,
    bucketed_batches,
    class_weights,
    encode_labels,
    fitting_max_length,
    pad_batch,
    split_train_val,
)
from trainer.evaluate import classification_metrics
from trainer.models import (
    describe_source,
    is_distilled_version,
    is_lora_version,
    load_for_training,
    pick_device,
    resolve_model_name,
)
from trainer.predict import predict_proba
from trainer.vocabulary import vocabulary_coverage

logger = logging.getLogger(__name__)

RECIPE_BATCH_SIZE = 16  # TrainConfig's default: the batch size every figure on CPU used
MAX_ACCELERATOR_BATCH = 128
MAX_LR_FACTOR = 2.0
# On an accelerator the loss is read back (a host sync) once every this many steps, not per
# step: history and progress get every step's loss, a little later. On CPU reading is free.
LOSS_SYNC_EVERY = 32


@dataclass
class TrainResult:
    metrics: dict  # on the evaluation (gold) set when given, else on the validation split
    val_metrics: dict
    history: list[dict] = field(default_factory=list)  # [{epoch, step, loss}]
    duration_seconds: float = 0.0  # training only, evaluation excluded
    device: str = ""
    num_train: int = 0
    config: dict = field(default_factory=dict)
    vocabulary: dict = field(default_factory=dict)  # trainer.vocabulary.Coverage of the texts
    # predicted label index of each evaluation text, in order (pairs versions on gold items)
    eval_predictions: list[int] = field(default_factory=list)
    # the validation split: indices into the training texts, and the kept model's predictions
    val_indices: list[int] = field(default_factory=list)
    val_predictions: list[int] = field(default_factory=list)


def _set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _evaluate(tokenizer, model, texts, labels, label_names, config, device
              ) -> tuple[dict, list[int]]:
    """(classification_metrics, the predicted label index of each text)."""
    if not texts:
        return {}, []
    probs = predict_proba(model, tokenizer, texts, max_length=config.max_length,
                          batch_size=max(64, config.batch_size), device=device)
    predicted = probs.argmax(axis=1).tolist()
    return classification_metrics(labels, predicted, label_names), predicted


def _probe_features(model, encoded, pad_id, device, batch_size=64):
    """Inputs of the linear classifier for each sequence, in order (eval mode, no grad)."""
    import torch

    head, captured = model.classifier, []
    hook = head.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].float()))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = pad_batch([encoded[i] for i in order[start:start + batch_size]], pad_id)
                with torch.autocast("cuda", dtype=torch.bfloat16,
                                    enabled=device.startswith("cuda")):
                    model(**{k: v.to(device) for k, v in batch.items()})
    finally:
        hook.remove()
    features = torch.cat(captured).cpu().numpy()
    out = features.copy()
    out[order] = features
    return out


def _init_head_by_probe(model, encoded, y_train, num_labels, pad_id, device, balanced) -> bool:
    """Linear probe before fine-tuning (LP-FT): fit a logistic regression on the frozen
    features the new linear head sees and start the head from it. False when not applicable
    (no plain Linear head, or fewer than two classes)."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear) or head.out_features != num_labels:
        return False
    if len(set(y_train)) < 2:
        return False
    features = _probe_features(model, encoded, pad_id, device)
    clf = LogisticRegression(C=1.0, class_weight="balanced" if balanced else None,
                             max_iter=2000).fit(features, y_train)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # one logit difference -> two symmetric logits
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-1, 1]) * intercept[0] / 2
    weight = np.zeros((num_labels, features.shape[1]), dtype=np.float32)
    bias = np.full(num_labels, intercept.min(), dtype=np.float32)  # classes never seen
    for row, label in enumerate(clf.classes_):
        weight[label], bias[label] = coef[row], intercept[row]
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return True


def accelerator_batch(config: TrainConfig, n_train: int, device: str) -> tuple[int, float]:
    """(batch size, learning-rate factor) of a run.

    The recipe (16 texts a batch) keeps a GPU idle: a step of e5-small on 16 short texts takes
    the host longer to launch than the GPU to run. On an accelerator, with the recipe's batch
    size and config.accelerator_batching, the batch doubles for each doubling of the training
    texts beyond 1,600 (so an epoch keeps >= 100 optimizer steps, as the recipe's 1,600 texts
    had), up to 128, and the learning rate grows with the square root of the batch (at most
    2x). Runs the figures on CPU describe (up to 3,199 texts, or any run on CPU) are unchanged.
    """
    if device == "cpu" or not config.accelerator_batching or config.batch_size != RECIPE_BATCH_SIZE:
        return config.batch_size, 1.0
    batch = RECIPE_BATCH_SIZE
    while batch * 2 <= MAX_ACCELERATOR_BATCH and n_train >= batch * 2 * 100:
        batch *= 2
    return batch, min(MAX_LR_FACTOR, (batch / RECIPE_BATCH_SIZE) ** 0.5)


def _param_groups(model, config: TrainConfig) -> list[dict]:
    """AdamW groups: no weight decay on biases and norms; the new head (+ pooler) at
    head_learning_rate; with layer_lr_decay < 1 each layer below the top learns
    `layer_lr_decay` times slower than the one above it (embeddings slowest)."""
    import re

    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    learning_rate, layer_decay = config.resolved("learning_rate"), config.resolved("layer_lr_decay")
    head_lr = config.head_learning_rate or learning_rate
    # a LoRA model's names carry peft's prefix: base_model.model.bert.encoder...
    named = [(name.removeprefix("base_model.model."), param)
             for name, param in model.named_parameters()]
    names = [name for name, _ in named]
    layer_of = {n: int(m.group(1)) for n in names if (m := re.search(r"\.layer\.(\d+)\.", n))}
    top = max(layer_of.values(), default=0) + 1
    groups: dict[tuple[float, bool], list] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        if name.startswith(("classifier", "pooler")) or ".pooler." in name:
            lr = head_lr
        else:  # embeddings sit below layer 0
            depth = layer_of.get(name, -1 if "embeddings" in name else top - 1)
            lr = learning_rate * layer_decay ** (top - 1 - depth)
        decay = not any(k in name for k in no_decay)
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": params, "lr": lr, "weight_decay": config.weight_decay if decay else 0.0}
            for (lr, decay), params in groups.items()]


def optimizer_step(model, loss, optimizer, scheduler) -> None:
    """Backpropagate `loss`, clip the gradient norm at 1, step the optimizer and schedule."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


class _LossLog:
    """Each step's loss into `history`, read back from the device every `sync_every` steps
    (and at step 1, and on flush): add() answers the step's progress entry with the newest
    loss read so far."""

    def __init__(self, history: list[dict], sync_every: int):
        self.history, self.sync_every, self.pending, self.latest = history, sync_every, [], None

    def add(self, epoch: int, step: int, loss) -> dict:
        self.pending.append((epoch, step, loss.detach()))
        if step == 1 or len(self.pending) >= self.sync_every:
            self.flush()
        return {"epoch": epoch, "step": step, "loss": self.latest}

    def flush(self) -> None:
        if not self.pending:
            return
        import torch

        values = torch.stack([loss for _, _, loss in self.pending]).float().cpu().tolist()
        for (epoch, step, _), value in zip(self.pending, values, strict=True):
            self.history.append({"epoch": epoch, "step": step, "loss": round(value, 5)})
        self.latest, self.pending = self.history[-1]["loss"], []


def _starting_point(config: TrainConfig) -> str:
    """What the run fine-tunes: the warm start, else the model name.

    A LoRA run always adapts the model name's base (an adapter must name a base every
    worker has, never another version's folder), and a LoRA version is no warm start for a
    full run either: both start from the model name. Nor is a distilled version (a
    shallower copy: the next run would fine-tune the few layers it kept).
    """
    warm = config.warm_start_from
    if config.lora_rank or (warm and (is_lora_version(warm) or is_distilled_version(warm))):
        return config.model_name
    return warm or config.model_name


def _wrap_lora(model, config: TrainConfig):
    """The model with LoRA adapters; only they, the classifier head and the pooler learn.

    peft's SEQ_CLS task already trains and saves `classifier`; the pooler joins it because a
    plain encoder's pooler is as new as the head (e5 has none).
    """
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_rank,
                      lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules),
                      exclude_modules=["pooler.dense"], modules_to_save=["classifier", "pooler"])
    return get_peft_model(model, lora)


def _save(model, tokenizer, output_dir: Path, lora: bool) -> None:
    """save_pretrained files; a LoRA run writes its adapter (+ head and pooler) and the
    config with the label names, not the base weights."""
    model.save_pretrained(output_dir)
    if lora:
        base = model.get_base_model()
        base.config.architectures = [type(base).__name__]
        base.config.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def train(
    *,
    texts: Sequence[str],
    labels: Sequence,
    label_names: list[str],
    config: TrainConfig,
    output_dir: str | Path,
    eval_texts: Sequence[str] | None = None,
    eval_labels: Sequence | None = None,
    progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Fine-tune on (texts, labels), keep the best epoch by validation macro-F1, save it.

    labels are names from label_names (or their indices). Writes save_pretrained files and
    training.json into output_dir. With config.lora_rank > 0 only LoRA adapters, the head
    and the pooler learn, and the folder holds just those over the base (see _save).
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    if len(texts) != len(labels) or not texts:
        raise ValueError("need as many labels as texts, and at least one")
    device = pick_device(config.device)
    if device == "cpu":
        torch.set_num_threads(config.num_threads or _cpu_count())
    _set_seed(config.seed)  # before the classifier head is initialised

    y = encode_labels(labels, label_names)
    train_idx, val_idx = split_train_val(y, config.val_fraction, config.seed)
    base = _starting_point(config)
    if config.warm_start_from and base != config.warm_start_from:
        logger.info("not a warm start from %s: the run starts from %s",
                    config.warm_start_from, base or "the default model")
        config = dataclasses.replace(config, warm_start_from=None)
    tokenizer, model, new_params = load_for_training(base, label_names, with_info=True)
    if config.resolved("freeze_word_embeddings"):
        model.get_input_embeddings().weight.requires_grad_(False)
    model.to(device)

    max_length = config.resolved("max_length")
    if max_length is None:  # fitted to the texts, within what the model can take
        lengths = [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]
        cap = min(MAX_LENGTH_CAP, tokenizer.model_max_length or MAX_LENGTH_CAP)
        max_length = fitting_max_length(lengths, cap=cap)
    config = dataclasses.replace(config, max_length=max_length)
    coverage = vocabulary_coverage(tokenizer, texts, max_length=config.max_length)
    if coverage.unreadable():
        logger.warning("the tokenizer of %s reads %.0f%% of the training tokens as unknown; "
                       "%.0f%% of the texts look like mojibake", base,
                       100 * coverage.unknown_share, 100 * coverage.garbled_share)
    encoded = tokenizer([texts[i] for i in train_idx], truncation=True,
                        max_length=config.max_length)["input_ids"]
    y_train = [y[i] for i in train_idx]
    pad_id = tokenizer.pad_token_id or 0
    started = time.perf_counter()  # the linear probe counts as training time
    head_probed = False
    if config.head_init == "probe" and any(k.startswith("classifier.") for k in new_params):
        head_probed = _init_head_by_probe(model, encoded, y_train, len(label_names), pad_id,
                                          device, config.class_weighting)
    lora = config.lora_rank > 0
    if lora:  # after the probe: the head peft copies to train starts from its weights
        model = _wrap_lora(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    val_texts, y_val = [texts[i] for i in val_idx], [y[i] for i in val_idx]

    batch_size, lr_factor = accelerator_batch(config, len(encoded), device)
    if batch_size != config.batch_size:
        logger.info("%s training texts on %s: batches of %s, learning rate x%.2f",
                    len(encoded), device, batch_size, lr_factor)
        config = dataclasses.replace(config, batch_size=batch_size)
    steps_per_epoch = -(-len(encoded) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    groups = _param_groups(model, config)
    for group in groups:
        group["lr"] *= lr_factor
    # fused: one kernel for the whole update on CUDA; CPU keeps the reference implementation
    optimizer = torch.optim.AdamW(groups, fused=True if device.startswith("cuda") else None)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    weight = None
    if config.class_weighting:
        weight = torch.tensor(class_weights(y_train, len(label_names),
                                            config.class_weight_power), device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    use_bf16 = device.startswith("cuda")
    rng = random.Random(config.seed)

    history: list[dict] = []
    losses = _LossLog(history, 1 if device == "cpu" else LOSS_SYNC_EVERY)
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    best_state, best_f1, best_val, best_val_pred, bad_epochs = None, -1.0, {}, [], 0
    step = 0
    non_blocking = device.startswith("cuda")
    for epoch in range(1, config.epochs + 1):
        model.train()
        for batch_idx in bucketed_batches([len(s) for s in encoded], config.batch_size, rng):
            if step >= total_steps:
                break
            batch = pad_batch([encoded[i] for i in batch_idx], pad_id)
            batch = {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}
            target = torch.tensor([y_train[i] for i in batch_idx]).to(
                device, non_blocking=non_blocking)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(**batch).logits
            loss = loss_fn(logits.float(), target)
            optimizer_step(model, loss, optimizer, scheduler)
            step += 1
            entry = losses.add(epoch, step, loss)
            if progress:
                progress({**entry, "epochs": config.epochs, "total_steps": total_steps})
        losses.flush()

        if val_texts:
            val, val_pred = _evaluate(tokenizer, model, val_texts, y_val, label_names, config,
                                      device)
            logger.info("epoch %s: validation macro-F1 %.4f", epoch, val["macro_f1"])
            if val["macro_f1"] >= best_f1:  # ties go to the later, longer-trained epoch
                best_f1, best_val, best_val_pred, bad_epochs = val["macro_f1"], val, val_pred, 0
                best_state = {k: v.detach().to("cpu", copy=True)  # frozen weights stay put
                              for k, v in model.state_dict().items() if k not in frozen}
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    break
        if step >= total_steps:
            break
    duration = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)

    if progress and history:  # evaluation can take a while: report (and heartbeat) first
        progress({**history[-1], "epochs": config.epochs, "total_steps": total_steps,
                  "phase": "evaluating"})
    eval_predictions: list[int] = []
    if eval_texts:
        metrics, eval_predictions = _evaluate(tokenizer, model, list(eval_texts),
                                              encode_labels(eval_labels, label_names),
                                              label_names, config, device)
        metrics["evaluated_on"] = "gold"
    else:
        metrics = {**copy.deepcopy(best_val), "evaluated_on": "validation"} if best_val else {}

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _save(model, tokenizer, output_dir, lora)
    resolved = resolve_model_name(base)
    result = TrainResult(
        metrics=metrics, val_metrics=best_val, history=history,
        duration_seconds=round(duration, 3), device=device, num_train=len(train_idx),
        config={**config.to_dict(), "resolved_model": resolved,
                "base_source": describe_source(resolved)},
        vocabulary=coverage.to_dict(), eval_predictions=eval_predictions,
        val_indices=list(val_idx) if best_val_pred else [], val_predictions=best_val_pred,
    )
    summary = {
        "config": result.config,
        "label_names": list(label_names),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "num_labels": len(label_names),
        "num_train": len(train_idx),
        "num_val": len(val_idx),
        "head_probed": head_probed,
        "learning_rate_factor": lr_factor,  # accelerator_batch's (1.0: the recipe's rates)
        "trainable_parameters": trainable,
        "lora_base_model": resolved if lora else None,  # the folder the adapter needs
        "vocabulary": result.vocabulary,
        "metrics": metrics,
        "val_metrics": best_val,
        "duration_seconds": result.duration_seconds,
        "device": device,
        "history": history,
    }
    (output_dir / "training.json").write_text(json.dumps(summary, indent=1))
    return result
