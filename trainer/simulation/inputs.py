"""What a simulation reads: its configuration, the labeled CSVs (pool and evaluation
file) and base-encoder embeddings of their texts, cached on disk."""

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SimConfig:
    pool: str
    eval: str
    out_dir: str = "bench/out/al"
    text_columns: list[str] = field(default_factory=lambda: ["text"])
    label_column: str = "label"
    strategies: list[str] = field(default_factory=lambda: ["random", "margin"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    seed_size: int = 100
    batch_size: int = 100
    max_labels: int = 1000
    rounds: int | None = None  # overrides max_labels when set
    seed_selection: str = "random"  # random | cluster (k-means on base-model embeddings)
    random_share: float = 0.1
    pool_subsample: int = 4000  # candidates scored per round
    eval_subsample: int | None = None  # fixed subsample of the eval file
    model: str = ""
    epochs: int = 3
    max_length: int | None = None  # None: fitted to each round's labeled texts
    train_batch_size: int = 16
    learning_rate: float | None = None  # None: the trainer's default for the model
    val_fraction: float | None = None  # None: the trainer's default (TrainConfig.val_fraction)
    max_steps: int | None = None
    device: str = ""
    jobs: int = 1
    learner: str = "finetune"  # finetune: a fresh fine-tune a round; head: the fast loop
    eval_part: str = "all"  # all | tune | report: a fixed half of the eval file
    pool_limit: int | None = None  # a fixed random subset of the pool file is the pool
    trust_kappa: float = 0.8  # "auto": diversity until consecutive heads agree this much
    finetune_at: list[int] = field(default_factory=list)  # head learner: also fine-tune here
    head_candidates: int = 0  # head learner: unlabeled items a strategy sees (0: all)
    report_only: bool = False  # merge what out_dir/runs holds (e.g. after a timeout)
    zero_shot_picks: str = "confident"  # "zero_shot": the cold start's picks (or a head_query
    # strategy on the zero-shot scorer blended with the head)
    handover: float | None = None  # "zero_shot": trainer.zero_shot's handover (None: default)
    class_sample_share: float = 0.5  # "+strat": of each batch (the product's default)
    class_share_flat: bool = False  # "+strat": not halved on even predicted classes
    versus: list[str] = field(default_factory=list)  # "a:b" pairs compared in the summary
    area_to: int = 500  # the summary's area under the curve up to this many labels


def sim_threads(cfg: SimConfig) -> int:
    """CPU threads of one run: the CPUs this process may use, shared by cfg.jobs runs."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, cfg.jobs))


def train_config(cfg: SimConfig, seed: int, threads: int | None = None):
    """The fine-tuning recipe of every fine-tune a simulation runs (the trainer's defaults
    where cfg leaves a setting at None)."""
    from trainer.config import TrainConfig

    recipe = {} if cfg.val_fraction is None else {"val_fraction": cfg.val_fraction}
    return TrainConfig(model_name=cfg.model, max_length=cfg.max_length, epochs=cfg.epochs,
                       batch_size=cfg.train_batch_size, learning_rate=cfg.learning_rate,
                       seed=seed, max_steps=cfg.max_steps, device=cfg.device,
                       num_threads=threads, **recipe)


def round_count(cfg: SimConfig) -> int:
    """Rounds after the seed round."""
    if cfg.rounds is not None:
        return cfg.rounds
    return max(0, -(-(cfg.max_labels - cfg.seed_size) // cfg.batch_size))


def read_labeled_csv(path: str, text_columns: list[str], label_column: str):
    """(texts, labels); several text columns are joined with '. ', blanks skipped."""
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parts = [(row.get(c) or "").strip() for c in text_columns]
            text = ". ".join(p for p in parts if p)
            if text and row.get(label_column):
                texts.append(text)
                labels.append(row[label_column].strip())
    return texts, labels


def load_data(cfg: SimConfig):
    """(pool_x, pool_y, eval_x, eval_y, label_names) after the configured limits and halves."""
    pool_x, pool_y = read_labeled_csv(cfg.pool, cfg.text_columns, cfg.label_column)
    eval_x, eval_y = read_labeled_csv(cfg.eval, cfg.text_columns, cfg.label_column)
    label_names = sorted(set(pool_y) | set(eval_y))
    if cfg.pool_limit and cfg.pool_limit < len(pool_x):
        keep = np.sort(np.random.default_rng(54321).choice(len(pool_x), cfg.pool_limit,
                                                           replace=False))
        pool_x, pool_y = [pool_x[i] for i in keep], [pool_y[i] for i in keep]
    if cfg.eval_part != "all":  # halves by a fixed shuffle: tune defaults on one, report the other
        order = np.random.default_rng(777).permutation(len(eval_x))
        half = order[: len(order) // 2] if cfg.eval_part == "tune" else order[len(order) // 2:]
        eval_x, eval_y = [eval_x[i] for i in half], [eval_y[i] for i in half]
    if cfg.eval_subsample and cfg.eval_subsample < len(eval_x):
        keep = np.random.default_rng(12345).choice(len(eval_x), cfg.eval_subsample, replace=False)
        eval_x, eval_y = [eval_x[i] for i in keep], [eval_y[i] for i in keep]
    return pool_x, pool_y, eval_x, eval_y, label_names


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cached_embeddings(texts: list[str], *, model: str = "", max_length: int = 128,
                      device: str = "", cache_dir: str = "bench/out/emb-cache") -> np.ndarray:
    """Base-encoder embeddings of texts, computed once per (model, length, texts) and kept
    as .npy under cache_dir (the head learner's rounds then cost no encoder time)."""
    import hashlib

    from trainer.predict import embed_with_base

    digest = hashlib.sha1(json.dumps([model, max_length, texts]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{digest}.npy"
    if path.exists():
        return np.load(path)
    quiet_transformers()
    emb = embed_with_base(texts, model_name=model, max_length=max_length, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb.astype(np.float32))
    return emb


def embeddings_of(cfg: SimConfig, texts: list[str], source: str) -> np.ndarray:
    """Embeddings of texts taken from the cached embeddings of the whole source file."""
    full, _ = read_labeled_csv(source, cfg.text_columns, cfg.label_column)
    emb = cached_embeddings(full, model=cfg.model, max_length=cfg.max_length or 128,
                            device=cfg.device,
                            cache_dir=str(Path(cfg.out_dir).parent / "emb-cache"))
    row = {text: i for i, text in enumerate(full)}
    return emb[[row[t] for t in texts]]


def zero_shot_scorer(cfg: SimConfig, names: list[str]):
    """The zero-shot scorer of the labels' default descriptions (trainer.zero_shot) as the
    product builds it, the descriptions embedded once and cached like the texts."""
    from trainer.zero_shot import (
        DESCRIPTION_MAX_LENGTH,
        ZeroShotScorer,
        describe,
        description_inputs,
    )

    texts = description_inputs(describe([{"name": name} for name in names]))
    emb = cached_embeddings(texts, model=cfg.model, max_length=DESCRIPTION_MAX_LENGTH,
                            device=cfg.device,
                            cache_dir=str(Path(cfg.out_dir).parent / "emb-cache"))
    return ZeroShotScorer(emb)
