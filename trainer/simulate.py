"""Simulated active learning: the real loop with a labeled CSV as the oracle.

Each round trains a FRESH model (trainer.train.train) on the labels so far, measures
macro-F1 on the evaluation file, scores a random candidate subsample of the unlabeled
pool and "asks" the oracle for the next batch picked by the strategy. Writes
results.csv (strategy, seed, round, labels, macro_f1, accuracy, seconds),
learning_curve.png and summary.json / summary.md.

    python -m trainer.simulate --pool train.csv --eval test.csv --strategies random,margin \
        --seeds 0,1,2 --seed-size 100 --batch-size 100 --max-labels 1000 --out-dir bench/out/al

Resumable: every (strategy, seed) run keeps its own CSV and labeled-set state under
out-dir/runs/; running the same command again continues where it stopped.
No Django here.
"""

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from trainer.data import MAX_LENGTH_CAP
from trainer.strategies import HEAD_STRATEGIES, STRATEGIES, query, select_seed

FIELDS = ["strategy", "seed", "round", "labels", "macro_f1", "accuracy", "seconds"]
BASELINE_AT = (100, 200, 500, 1000)  # head learner: TF-IDF + LR on the same labels here


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


def _data(cfg: SimConfig):
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


def _n_rounds(cfg: SimConfig) -> int:
    if cfg.rounds is not None:
        return cfg.rounds
    return max(0, -(-(cfg.max_labels - cfg.seed_size) // cfg.batch_size))


def _initial_labels(cfg: SimConfig, pool_x: list[str], seed: int) -> list[int]:
    """The same seed set for every strategy of one seed (a fair comparison)."""
    rng = np.random.default_rng(seed)
    if cfg.seed_selection == "cluster":
        from trainer.predict import embed_with_base

        sample = rng.choice(len(pool_x), min(len(pool_x), cfg.pool_subsample), replace=False)
        emb = embed_with_base([pool_x[i] for i in sample], model_name=cfg.model,
                              max_length=cfg.max_length or MAX_LENGTH_CAP, device=cfg.device)
        return [int(sample[i]) for i in select_seed(emb, cfg.seed_size, seed=seed)]
    return [int(i) for i in rng.choice(len(pool_x), cfg.seed_size, replace=False)]


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
    _quiet_transformers()
    emb = embed_with_base(texts, model_name=model, max_length=max_length, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb.astype(np.float32))
    return emb


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def run_one(cfg: SimConfig, strategy: str, seed: int) -> Path:
    """One (strategy, seed) learning curve; resumes from out_dir/runs/<strategy>-<seed>.*"""
    from trainer.config import TrainConfig
    from trainer.models import load_classifier
    from trainer.predict import predict_and_embed
    from trainer.train import train

    _quiet_transformers()
    runs = Path(cfg.out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rows_path, state_path = runs / f"{strategy}-{seed}.csv", runs / f"{strategy}-{seed}.json"
    pool_x, pool_y, eval_x, eval_y, label_names = _data(cfg)
    if state_path.exists():
        state = json.loads(state_path.read_text())
    else:
        state = {"round": 0, "labeled": _initial_labels(cfg, pool_x, seed)}
        rows_path.write_text(",".join(FIELDS) + "\n")
    threads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1) // max(1, cfg.jobs))
    n_rounds = _n_rounds(cfg)
    workdir = Path(tempfile.mkdtemp(prefix=f"al-{strategy}-{seed}-"))
    try:
        while state["round"] <= n_rounds:
            r, labeled = state["round"], state["labeled"]
            started = time.perf_counter()
            config = TrainConfig(model_name=cfg.model, max_length=cfg.max_length,
                                 epochs=cfg.epochs, batch_size=cfg.train_batch_size,
                                 learning_rate=cfg.learning_rate, seed=seed,
                                 max_steps=cfg.max_steps, device=cfg.device,
                                 num_threads=threads)
            out = workdir / f"round-{r}"
            result = train(texts=[pool_x[i] for i in labeled],
                           labels=[pool_y[i] for i in labeled], label_names=label_names,
                           config=config, output_dir=out, eval_texts=eval_x,
                           eval_labels=eval_y)
            taken = set(labeled)
            unlabeled = np.array([i for i in range(len(pool_x)) if i not in taken])
            if r < n_rounds and len(unlabeled):
                rng = np.random.default_rng([seed, r])
                cand = rng.choice(unlabeled, min(len(unlabeled), cfg.pool_subsample),
                                  replace=False)
                proba = emb = np.zeros((len(cand), len(label_names)))
                if strategy != "random":
                    tokenizer, model = load_classifier(str(out), device=cfg.device)
                    proba, emb = predict_and_embed(model, tokenizer, [pool_x[i] for i in cand],
                                                   max_length=result.config["max_length"],
                                                   batch_size=128, device=cfg.device)
                    del model
                picks = query(strategy, proba, cfg.batch_size, random_share=cfg.random_share,
                              embeddings=emb, seed=seed * 1000 + r)
                labeled = labeled + [int(cand[p.index]) for p in picks]
            shutil.rmtree(out, ignore_errors=True)
            row = {"strategy": strategy, "seed": seed, "round": r, "labels": len(state["labeled"]),
                   "macro_f1": round(result.metrics["macro_f1"], 5),
                   "accuracy": round(result.metrics["accuracy"], 5),
                   "seconds": round(time.perf_counter() - started, 2)}
            with rows_path.open("a", newline="") as f:
                csv.DictWriter(f, FIELDS).writerow(row)
            state = {"round": r + 1, "labeled": labeled}
            state_path.write_text(json.dumps(state))
            print(f"[{strategy} seed {seed}] round {r}: {row['labels']} labels, "
                  f"macro-F1 {row['macro_f1']:.4f} ({row['seconds']} s)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows_path


def _embeddings_of(cfg: SimConfig, texts: list[str], source: str) -> np.ndarray:
    """Embeddings of texts taken from the cached embeddings of the whole source file."""
    full, _ = read_labeled_csv(source, cfg.text_columns, cfg.label_column)
    emb = cached_embeddings(full, model=cfg.model, max_length=cfg.max_length or 128,
                            device=cfg.device,
                            cache_dir=str(Path(cfg.out_dir).parent / "emb-cache"))
    row = {text: i for i, text in enumerate(full)}
    return emb[[row[t] for t in texts]]


def _head_variant(strategy: str) -> tuple[str, bool, bool, str]:
    """"auto+bal+st" -> ("auto", self-training, anchor subsampling, the uncertainty strategy
    "auto" switches to). Modifiers: st = self-training, anchor = AnchorAL subsampling,
    bal = balanced_ties instead of breaking_ties after the cold start."""
    base, *mods = strategy.split("+")
    unknown = set(mods) - {"st", "anchor", "bal"}
    if base not in HEAD_STRATEGIES or unknown:
        raise ValueError(f"unknown head strategy {strategy!r}")
    return base, "st" in mods, "anchor" in mods, \
        "balanced_ties" if "bal" in mods else "breaking_ties"


def run_head(cfg: SimConfig, strategy: str, seed: int) -> Path:
    """One learning curve of the fast loop: the embedding head refit after every batch.

    Every round costs a logistic regression on base-encoder embeddings (cached), so a
    curve with a point every 20 labels takes seconds. "auto" is the product's cold start:
    k-means (small-text EmbeddingKMeans) batches until two consecutive heads agree on a
    fixed sample with kappa >= trust_kappa, then breaking ties. Rows at finetune_at label
    counts also fine-tune the real model on the same labels ("<strategy>:finetune"), and
    rows at BASELINE_AT fit TF-IDF + logistic regression on them ("<strategy>:tfidf").
    """
    from sklearn.metrics import accuracy_score, f1_score

    from trainer.head import SelfTraining, fit_head
    from trainer.strategies import head_query, predictions_stable

    base, self_train, anchor, after = _head_variant(strategy)
    runs = Path(cfg.out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rows_path = runs / f"{strategy}-{seed}.csv"
    pool_x, pool_y, eval_x, eval_y, names = _data(cfg)
    x_pool = _embeddings_of(cfg, pool_x, cfg.pool)
    x_eval = _embeddings_of(cfg, eval_x, cfg.eval)
    y_pool = np.array([names.index(v) for v in pool_y])
    y_eval = np.array([names.index(v) for v in eval_y])
    rng = np.random.default_rng(seed)
    stop_sample = np.random.default_rng(99).choice(len(pool_x), min(500, len(pool_x)),
                                                   replace=False)
    st = SelfTraining() if self_train else None
    phase = "diversity" if base == "auto" else base
    if base == "auto":
        cand = rng.choice(len(pool_x), min(len(pool_x), 5000), replace=False)
        labeled = [int(cand[i]) for i in select_seed(x_pool[cand], cfg.seed_size, seed=seed)]
    else:
        labeled = [int(i) for i in rng.choice(len(pool_x), cfg.seed_size, replace=False)]
    previous, rows = None, []
    for r in range(_n_rounds(cfg) + 1):
        started = time.perf_counter()
        lab = np.asarray(labeled)
        unl = np.setdiff1d(np.arange(len(pool_x)), lab)
        head = fit_head(x_pool[lab], y_pool[lab], len(names), seed=seed,
                        x_unlabeled=x_pool[unl] if st else None, self_training=st)
        pred = head.predict_proba(x_eval).argmax(axis=1)
        row = {"strategy": strategy, "seed": seed, "round": r, "labels": len(labeled),
               "macro_f1": round(float(f1_score(y_eval, pred, average="macro",
                                                labels=list(range(len(names))),
                                                zero_division=0)), 5),
               "accuracy": round(float(accuracy_score(y_eval, pred)), 5)}
        if phase == "diversity":
            current = head.predict_proba(x_pool[stop_sample]).argmax(axis=1)
            trusted, _ = predictions_stable(previous, current, len(names), cfg.trust_kappa)
            previous, phase = current, (after if trusted else phase)
        if r < _n_rounds(cfg):
            name = "embedding_kmeans" if phase == "diversity" else phase
            picks = head_query(name, head, x_pool, lab, y_pool[lab], cfg.batch_size,
                               random_share=cfg.random_share, seed=seed * 1000 + r,
                               candidates=500 if anchor else cfg.head_candidates,
                               subsampling="anchor" if anchor else "random")
            labeled = labeled + [p.index for p in picks]
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
        if row["labels"] in BASELINE_AT:  # the simple baseline on the very same labels
            rows.append(_tfidf_row(f"{strategy}:tfidf", seed, r, [pool_x[i] for i in lab],
                                   [pool_y[i] for i in lab], eval_x, eval_y, names))
        if row["labels"] in cfg.finetune_at:
            rows.append(_finetune_row(cfg, f"{strategy}:finetune", seed, r,
                                      [pool_x[i] for i in lab], [pool_y[i] for i in lab],
                                      eval_x, eval_y, names))
    with rows_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"[{strategy} seed {seed}] {rows[-1]['labels']} labels, macro-F1 "
          f"{rows[-1]['macro_f1']:.4f}", flush=True)
    return rows_path


def _tfidf_row(strategy, seed, r, texts, labels, eval_x, eval_y, names) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from trainer.baseline import tfidf_logreg

    started = time.perf_counter()
    pred = tfidf_logreg(texts, labels).predict(eval_x) if len(set(labels)) > 1 \
        else [labels[0]] * len(eval_x)
    return {"strategy": strategy, "seed": seed, "round": r, "labels": len(texts),
            "macro_f1": round(float(f1_score(eval_y, pred, average="macro", labels=names,
                                             zero_division=0)), 5),
            "accuracy": round(float(accuracy_score(eval_y, pred)), 5),
            "seconds": round(time.perf_counter() - started, 2)}


def _finetune_row(cfg, strategy, seed, r, texts, labels, eval_x, eval_y, names) -> dict:
    from trainer.config import TrainConfig
    from trainer.train import train

    _quiet_transformers()
    started = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="al-ft-"))
    try:
        config = TrainConfig(model_name=cfg.model, max_length=cfg.max_length, epochs=cfg.epochs,
                             batch_size=cfg.train_batch_size, learning_rate=cfg.learning_rate,
                             seed=seed, device=cfg.device)
        result = train(texts=texts, labels=labels, label_names=names, config=config,
                       output_dir=out, eval_texts=eval_x, eval_labels=eval_y)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"[{strategy} seed {seed}] {len(texts)} labels: fine-tune macro-F1 "
          f"{result.metrics['macro_f1']:.4f}", flush=True)
    return {"strategy": strategy, "seed": seed, "round": r, "labels": len(texts),
            "macro_f1": round(result.metrics["macro_f1"], 5),
            "accuracy": round(result.metrics["accuracy"], 5),
            "seconds": round(time.perf_counter() - started, 2)}


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [{**row, "seed": int(row["seed"]), "round": int(row["round"]),
                 "labels": int(row["labels"]), "macro_f1": float(row["macro_f1"]),
                 "accuracy": float(row["accuracy"]), "seconds": float(row["seconds"])}
                for row in csv.DictReader(f)]


def curves(rows: list[dict]) -> dict[str, dict[int, list[float]]]:
    """strategy -> labels -> macro-F1 of each seed."""
    out: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        out.setdefault(row["strategy"], {}).setdefault(row["labels"], []).append(row["macro_f1"])
    return out


def labels_to_reach(points: dict[int, list[float]], target: float) -> float | None:
    """First label count where the mean curve reaches target, linearly interpolated."""
    xs = sorted(points)
    ys = [float(np.mean(points[x])) for x in xs]
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if y >= target:
            if i == 0:
                return float(x)
            x0, y0 = xs[i - 1], ys[i - 1]
            return float(x0 + (target - y0) * (x - x0) / (y - y0))
    return None


def labels_to_stay_above(points: dict[int, list[float]], target: float) -> float | None:
    """Label count from which the mean curve stays >= target up to the last round.

    The robust reading for noisy curves: a strategy that touches the target once and
    drops again does not count until it stays there. Interpolated on the last crossing.
    """
    xs = sorted(points)
    ys = [float(np.mean(points[x])) for x in xs]
    if not ys or ys[-1] < target:
        return None
    i = len(xs) - 1
    while i > 0 and ys[i - 1] >= target:
        i -= 1
    if i == 0:
        return float(xs[0])
    x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def summarize(rows: list[dict], reference_labels: int | None = None) -> dict:
    """Labels each strategy needs to reach random's mean macro-F1 at reference_labels."""
    data = curves(rows)
    summary: dict = {"strategies": {}}
    for strategy, points in data.items():
        last = max(points)
        summary["strategies"][strategy] = {
            "seeds": len(points[last]), "final_labels": last,
            "final_macro_f1_mean": round(float(np.mean(points[last])), 4),
            "final_macro_f1_std": round(float(np.std(points[last])), 4),
        }
    if "random" in data:
        ref = reference_labels if reference_labels in data["random"] else max(data["random"])
        if ref:
            target = float(np.mean(data["random"][ref]))
            summary.update(reference_labels=ref, random_macro_f1_at_reference=round(target, 4))
            for strategy, points in data.items():
                need = labels_to_reach(points, target)
                stay = labels_to_stay_above(points, target)
                entry = summary["strategies"][strategy]
                entry["labels_to_reach_random"] = None if need is None else round(need)
                entry["label_savings"] = None if need is None else round(1 - need / ref, 3)
                entry["labels_to_stay_above_random"] = None if stay is None else round(stay)
                entry["max_deficit_vs_random"] = _max_deficit(points, data["random"])
            for strategy, points in data.items():  # quality at half the reference budget
                half = ref // 2
                if half in points:
                    summary["strategies"][strategy][f"macro_f1_at_{half}"] = round(
                        float(np.mean(points[half])), 4)
    return summary


def _max_deficit(points: dict[int, list[float]], random: dict[int, list[float]]) -> float | None:
    """Largest (random mean - strategy mean) macro-F1 over the label counts both measured."""
    common = sorted(set(points) & set(random))
    if not common:
        return None
    return round(max(float(np.mean(random[x]) - np.mean(points[x])) for x in common), 4)


def plot(rows: list[dict], path: Path, reference: int | None = None, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, points in sorted(curves(rows).items()):
        xs = sorted(points)
        mean = [np.mean(points[x]) for x in xs]
        lo, hi = [min(points[x]) for x in xs], [max(points[x]) for x in xs]
        style = "--" if strategy == "random" else "-"
        seeds = max(len(v) for v in points.values())
        (line,) = ax.plot(xs, mean, style, marker="o", ms=3, label=f"{strategy} (n={seeds})")
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    random = curves(rows).get("random", {})
    if reference in random:
        level = float(np.mean(random[reference]))
        ax.axhline(level, color="black", lw=0.8, ls=":",
                   label=f"random at {reference} labels ({level:.3f})")
    ax.set_xlabel("labels")
    ax.set_ylabel("macro-F1 (eval)")
    ax.set_title(title or "Active learning vs random: mean, band = min-max over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary_md(summary: dict) -> str:
    lines = ["| strategy | seeds | final labels | final macro-F1 (mean ± std) "
             "| labels to reach random@ref (first) | savings | labels to stay above "
             "| worst gap to random | macro-F1 at ref/2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    missing = "not reached" if "reference_labels" in summary else "no random run"
    for name, s in summary["strategies"].items():
        need, stay = s.get("labels_to_reach_random"), s.get("labels_to_stay_above_random")
        savings = s.get("label_savings")
        lines.append(f"| {name} | {s['seeds']} | {s['final_labels']} | "
                     f"{s['final_macro_f1_mean']:.4f} ± {s['final_macro_f1_std']:.4f} | "
                     f"{missing if need is None else need} | "
                     f"{'' if savings is None else format(savings, '.0%')} | "
                     f"{missing if stay is None else stay} | "
                     f"{_fmt(s.get('max_deficit_vs_random'), sign=True)} | "
                     f"{_fmt(_half_f1(s))} |")
    if "reference_labels" in summary:
        lines.append(f"\nreference: random's mean macro-F1 at {summary['reference_labels']} labels"
                     f" = {summary['random_macro_f1_at_reference']:.4f}")
    return "\n".join(lines) + "\n"


def _half_f1(entry: dict) -> float | None:
    return next((v for k, v in entry.items() if k.startswith("macro_f1_at_")), None)


def _fmt(value, sign: bool = False) -> str:
    return "" if value is None else format(value, "+.4f" if sign else ".4f")


def _run_one_star(args) -> str:
    cfg = args[0]
    return str((run_head if cfg.learner == "head" else run_one)(*args))


def simulate(cfg: SimConfig) -> dict:
    """All strategies x seeds; returns the summary (files written under cfg.out_dir)."""
    from tqdm import tqdm

    for strategy in cfg.strategies:
        if cfg.learner == "head":
            _head_variant(strategy)
        elif strategy.removesuffix("_diverse") not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.report_only:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    jobs = [(cfg, s, seed) for seed in cfg.seeds for s in cfg.strategies]
    if cfg.report_only:
        jobs = [job for job in jobs if (out / "runs" / f"{job[1]}-{job[2]}.csv").exists()]
    elif cfg.jobs > 1:
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as ex:
            for _ in tqdm(ex.map(_run_one_star, jobs), total=len(jobs), desc="runs"):
                pass
    else:
        for job in tqdm(jobs, desc="runs"):
            _run_one_star(job)
    rows = []
    for _, strategy, seed in jobs:
        rows += read_rows(out / "runs" / f"{strategy}-{seed}.csv")
    if cfg.report_only and not rows and (out / "results.csv").exists():  # merged elsewhere
        rows = read_rows(out / "results.csv")
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    reference = cfg.max_labels if cfg.rounds is None else None
    plot(rows, out / "learning_curve.png", reference,
         f"{Path(cfg.pool).parent.name}: mean over seeds, band = min-max")
    summary = summarize(rows, reference)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(_summary_md(summary))
    return summary


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv=None) -> SimConfig:
    p = argparse.ArgumentParser(prog="python -m trainer.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", required=True, help="labeled CSV used as the oracle")
    p.add_argument("--eval", required=True, help="labeled CSV to measure macro-F1 on")
    p.add_argument("--out-dir", default="bench/out/al")
    p.add_argument("--text-columns", default="text", help="comma-separated, joined with '. '")
    p.add_argument("--label-column", default="label")
    p.add_argument("--strategies", default="random,margin",
                   help=f"comma-separated of {', '.join(STRATEGIES)} (+ '<name>_diverse')")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seed-size", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=100, help="labels asked per round")
    p.add_argument("--max-labels", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=None, help="rounds after the seed round")
    p.add_argument("--seed-selection", choices=["random", "cluster"], default="random")
    p.add_argument("--random-share", type=float, default=0.1)
    p.add_argument("--pool-subsample", type=int, default=4000, help="candidates scored a round")
    p.add_argument("--eval-subsample", type=int, default=None)
    p.add_argument("--model", default="", help="built-in or registered name, hub id or folder; "
                   "'' = the default (multilingual-e5-small)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per text; default: fitted to the labeled texts (at most 256)")
    p.add_argument("--train-batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=None,
                   help="default: the trainer's default for the model")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--device", default="")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--learner", choices=["finetune", "head"], default="finetune",
                   help="finetune: a fresh fine-tune each round; head: the fast loop "
                   "(logistic regression on cached base-encoder embeddings)")
    p.add_argument("--eval-part", choices=["all", "tune", "report"], default="all",
                   help="a fixed half of the eval file: choose defaults on tune, report on report")
    p.add_argument("--pool-limit", type=int, default=None,
                   help="a fixed random subset of the pool file is the pool")
    p.add_argument("--trust-kappa", type=float, default=0.8,
                   help="'auto': diversity until consecutive heads agree with this kappa")
    p.add_argument("--finetune-at", default="",
                   help="head learner: also fine-tune the model at these label counts")
    p.add_argument("--head-candidates", type=int, default=0,
                   help="head learner: a random subsample of this many unlabeled items per "
                   "round (the product's FAST_LOOP_CANDIDATES); 0: all")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: merge out-dir/runs into results, plot and summary")
    a = p.parse_args(argv)
    return SimConfig(
        pool=a.pool, eval=a.eval, out_dir=a.out_dir, text_columns=_csv_list(a.text_columns),
        label_column=a.label_column, strategies=_csv_list(a.strategies),
        seeds=[int(s) for s in _csv_list(a.seeds)], seed_size=a.seed_size,
        batch_size=a.batch_size, max_labels=a.max_labels, rounds=a.rounds,
        seed_selection=a.seed_selection, random_share=a.random_share,
        pool_subsample=a.pool_subsample, eval_subsample=a.eval_subsample, model=a.model,
        epochs=a.epochs, max_length=a.max_length, train_batch_size=a.train_batch_size,
        learning_rate=a.learning_rate, max_steps=a.max_steps, device=a.device, jobs=a.jobs,
        learner=a.learner, eval_part=a.eval_part, pool_limit=a.pool_limit,
        trust_kappa=a.trust_kappa, head_candidates=a.head_candidates,
        finetune_at=[int(v) for v in _csv_list(a.finetune_at)],
        report_only=a.report_only)


def main(argv=None) -> int:
    summary = simulate(parse_args(argv))
    print(_summary_md(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
