"""Benchmark: fine-tune on N random clothing-review labels, evaluate on test.csv.

    python bench/train_clothing.py --threads 2            # CPU, 2 threads
    python bench/train_clothing.py --device cuda          # same run on a GPU

Prints one JSON line: train wall time (excludes evaluation), examples/s
(training examples x epochs run / train time), macro-F1 and accuracy on the test file.
"""

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.config import TrainConfig  # noqa: E402
from trainer.train import train  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "clothing_reviews"
LABELS = ["negative", "neutral", "positive"]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def review_text(row: dict) -> str:
    title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
    return f"{title}. {text}" if title else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="seed of the label draw")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None,
                        help="default: 3e-4 for the bundled model, 5e-5 for others")
    parser.add_argument("--head-lr", type=float, default=None)
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--no-class-weighting", action="store_true")
    parser.add_argument("--head-init", default="probe", choices=["probe", "random"])
    parser.add_argument("--weight-power", type=float, default=1.0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--device", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="")
    parser.add_argument("--dev", type=int, default=0,
                        help="tune: evaluate on N other train.csv rows instead of test.csv")
    args = parser.parse_args()

    import torch

    pool = read_rows(args.data / "train.csv")
    drawn = random.Random(args.seed).sample(range(len(pool)), args.n + args.dev)
    rows = [pool[i] for i in drawn[:args.n]]
    test = [pool[i] for i in drawn[args.n:]] if args.dev else read_rows(args.data / "test.csv")
    config = TrainConfig(
        model_name=args.model, max_length=args.max_length, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, device=args.device,
        head_learning_rate=args.head_lr, seed=args.train_seed,
        class_weighting=not args.no_class_weighting, val_fraction=args.val_fraction,
        num_threads=args.threads, head_init=args.head_init,
        class_weight_power=args.weight_power,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = train(
            texts=[review_text(r) for r in rows], labels=[r["label"] for r in rows],
            label_names=LABELS, config=config, output_dir=out,
            eval_texts=[review_text(r) for r in test], eval_labels=[r["label"] for r in test],
            progress=lambda s: s["step"] % 10 == 0 and print(
                f"epoch {s['epoch']} step {s['step']}/{s['total_steps']} loss {s['loss']:.3f} "
                f"{time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True),
        )
    total = time.perf_counter() - started
    epochs_run = max(h["epoch"] for h in result.history)
    print(json.dumps({
        "n_labels": args.n, "num_train": result.num_train, "epochs_run": epochs_run,
        "device": result.device, "threads": torch.get_num_threads(),
        "train_seconds": result.duration_seconds,
        "examples_per_second": round(result.num_train * epochs_run / result.duration_seconds, 1),
        "total_seconds_incl_load_eval_save": round(total, 1),
        "evaluated_on": f"{args.dev} held-out train.csv rows" if args.dev else "test.csv",
        "test_rows": len(test), "test_macro_f1": round(result.metrics["macro_f1"], 4),
        "test_accuracy": round(result.metrics["accuracy"], 4),
        "per_class_f1": {k: round(v["f1"], 3) for k, v in result.metrics["per_class"].items()},
        "config": {k: v for k, v in result.config.items() if k != "resolved_model"},
    }))


if __name__ == "__main__":
    main()
