"""Benchmark: fine-tune on N random labels of a data set, against TF-IDF + LR on the same labels.

    python -m bench.fine_tune --data ../shared/data/clothing_reviews --threads 2
    python -m bench.fine_tune --data ../shared/data/zh_shopping_reviews --threads 2
    python -m bench.fine_tune --model all-MiniLM-L6-v2 ...      # the English-only option
    python -m bench.fine_tune --dev 1000 ...    # tune: evaluate on 1,000 other train.csv rows

Draws N rows of train.csv (seed --seed), fine-tunes with trainer.train.train and fits the
TF-IDF + logistic-regression baseline (trainer.baseline) on exactly those rows, and
evaluates both on test.csv (or on --dev other train.csv rows, never test.csv, for tuning).
Prints one JSON line: macro-F1 of both, training time (the training loop, probe included;
not loading, evaluation or saving), the max length used (fitted to the training texts unless
--max-length), the tokenizer's unknown-token and truncation shares on the training texts,
the saved version's size, parameters, peak memory and scoring throughput (reviews per
second and per CPU-second over the evaluation texts).
"""

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.support import SHARED
from trainer.baseline import tfidf_logreg
from trainer.config import TrainConfig
from trainer.evaluate import classification_metrics
from trainer.train import train

SENTIMENT_ORDER = ["negative", "neutral", "positive"]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def review_text(row: dict) -> str:
    title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
    return f"{title}. {text}" if title else text


def label_names(rows: list[dict]) -> list[str]:
    found = {r["label"] for r in rows}
    return [n for n in SENTIMENT_ORDER if n in found] + sorted(found - set(SENTIMENT_ORDER))


def labeled_sample(data: Path, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """n random train.csv rows of a data set: (texts, labels, the data set's label names)."""
    pool = read_rows(data / "train.csv")
    rows = [pool[i] for i in random.Random(seed).sample(range(len(pool)), n)]
    return [review_text(r) for r in rows], [r["label"] for r in rows], label_names(pool)


@dataclass
class Draw:
    """Rows of one data set for a bench: labeled, an unlabeled pool, and test rows."""
    names: list[str]
    texts: list[str]
    labels: list[str]
    pool_texts: list[str]
    test_texts: list[str]
    test_labels: list[str]


def draw_rows(data: Path, n: int, test_rows: int, seed: int, pool: int = 0) -> Draw:
    """n labeled rows and `pool` further rows (one draw from train.csv, so disjoint) and
    test_rows rows of test.csv, each drawn with `seed`."""
    train_rows, test = read_rows(data / "train.csv"), read_rows(data / "test.csv")
    drawn = random.Random(seed).sample(range(len(train_rows)), n + pool)
    rows = [train_rows[i] for i in drawn[:n]]
    test = [test[i] for i in random.Random(seed).sample(range(len(test)), test_rows)]
    return Draw(label_names(train_rows), [review_text(r) for r in rows],
                [r["label"] for r in rows], [review_text(train_rows[i]) for i in drawn[n:]],
                [review_text(r) for r in test], [r["label"] for r in test])


def baseline_scores(draw: Draw) -> dict:
    """TF-IDF + LR fitted on the draw's labels, scored on its test rows."""
    baseline = tfidf_logreg(draw.texts, draw.labels)
    metrics = classification_metrics([draw.names.index(y) for y in draw.test_labels],
                                     [draw.names.index(y)
                                      for y in baseline.predict(draw.test_texts)], draw.names)
    return {"run": "TF-IDF + LR", "macro_f1": round(metrics["macro_f1"], 4),
            "accuracy": round(metrics["accuracy"], 4)}


def log(message: str) -> None:
    """A timestamped progress line on stderr (stdout carries the results)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def scoring_throughput(folder: Path, texts: list[str], max_length: int, device: str) -> dict:
    """Reviews per second (wall) and per CPU-second, scoring with the saved version."""
    from trainer.predict import load_scorer, predict_proba

    tokenizer, model = load_scorer(str(folder), device=device)
    wall, cpu = time.perf_counter(), time.process_time()
    predict_proba(model, tokenizer, texts, max_length=max_length, device=device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"texts": len(texts), "reviews_per_second": round(len(texts) / wall, 1),
            "reviews_per_cpu_second": round(len(texts) / cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "clothing_reviews")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="seed of the label draw")
    parser.add_argument("--model", default="", help="built-in name, hub id or folder; "
                        "default: the platform default (multilingual-e5-small)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=None,
                        help="default: fitted to the training texts (95%% whole, at most 256)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None, help="default: the model's default")
    parser.add_argument("--head-lr", type=float, default=None)
    parser.add_argument("--layer-decay", type=float, default=None,
                        help="layer-wise learning-rate decay (default: the model's default)")
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--head-init", default="probe", choices=["probe", "random"])
    parser.add_argument("--freeze-embeddings", default=None, choices=["yes", "no"],
                        help="freeze the word embeddings (default: the model's default)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--device", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dev", type=int, default=0,
                        help="tune: evaluate on N other train.csv rows instead of test.csv")
    parser.add_argument("--throughput-texts", type=int, default=1000)
    parser.add_argument("--text-prefix", default="", help="experiment: prepend to every text")
    args = parser.parse_args()

    import torch

    from trainer.models import describe_source, resolve_model_name

    torch.set_num_threads(args.threads)
    pool = read_rows(args.data / "train.csv")
    drawn = random.Random(args.seed).sample(range(len(pool)), args.n + args.dev)
    rows = [pool[i] for i in drawn[:args.n]]
    test = [pool[i] for i in drawn[args.n:]] if args.dev else read_rows(args.data / "test.csv")
    names = label_names(pool)
    texts, labels = [args.text_prefix + review_text(r) for r in rows], [r["label"] for r in rows]
    eval_texts = [args.text_prefix + review_text(r) for r in test]
    eval_labels = [r["label"] for r in test]

    index = {n: i for i, n in enumerate(names)}
    baseline = tfidf_logreg(texts, labels)
    baseline_metrics = classification_metrics([index[y] for y in eval_labels],
                                              [index[y] for y in baseline.predict(eval_texts)],
                                              names)

    overrides = {}
    if args.freeze_embeddings:
        overrides["freeze_word_embeddings"] = args.freeze_embeddings == "yes"
    config = TrainConfig(
        model_name=args.model, max_length=args.max_length, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, device=args.device,
        head_learning_rate=args.head_lr, layer_lr_decay=args.layer_decay, seed=args.train_seed,
        val_fraction=args.val_fraction,
        num_threads=args.threads, head_init=args.head_init, **overrides,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = train(
            texts=texts, labels=labels, label_names=names, config=config, output_dir=out,
            eval_texts=eval_texts, eval_labels=eval_labels,
            progress=lambda s: s["step"] % 10 == 0 and print(
                f"epoch {s['epoch']} step {s['step']}/{s['total_steps']} loss {s['loss']:.3f} "
                f"{time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True),
        )
        total = time.perf_counter() - started
        size = folder_bytes(Path(out))
        throughput = scoring_throughput(Path(out), eval_texts[:args.throughput_texts],
                                        result.config["max_length"], result.device)
        model_class = json.loads((Path(out) / "config.json").read_text())["architectures"][0]
    epochs_run = max(h["epoch"] for h in result.history)
    f1 = result.metrics["macro_f1"]
    print(json.dumps({
        "data": args.data.name, "model": args.model or "(default)",
        "base": describe_source(resolve_model_name(args.model)), "architecture": model_class,
        "n_labels": args.n, "num_train": result.num_train, "epochs_run": epochs_run,
        "device": result.device, "threads": torch.get_num_threads(),
        "evaluated_on": f"{args.dev} held-out train.csv rows" if args.dev else "test.csv",
        "eval_rows": len(test),
        "macro_f1": round(f1, 4),
        "tfidf_lr_macro_f1": round(baseline_metrics["macro_f1"], 4),
        "gain_over_tfidf_points": round(100 * (f1 - baseline_metrics["macro_f1"]), 1),
        "accuracy": round(result.metrics["accuracy"], 4),
        "per_class_f1": {k: round(v["f1"], 3) for k, v in result.metrics["per_class"].items()},
        "tfidf_per_class_f1": {k: round(v["f1"], 3)
                               for k, v in baseline_metrics["per_class"].items()},
        "train_seconds": result.duration_seconds,
        "examples_per_second": round(result.num_train * epochs_run / result.duration_seconds, 1),
        "total_seconds_incl_load_eval_save": round(total, 1),
        "max_length": result.config["max_length"],
        "unknown_token_share": result.vocabulary["unknown_share"],
        "truncated_share": result.vocabulary["truncated_share"],
        "saved_mb": round(size / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "scoring": throughput,
        "config": {k: v for k, v in result.config.items() if k != "resolved_model"},
    }))


if __name__ == "__main__":
    main()
