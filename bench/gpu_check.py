"""The whole GPU check in one command and one table (sized for < 8 minutes on one H200).

    python -m bench.gpu_check --data-root .gpu/data --out "$OUT"    # on the GPU machine
    python -m bench.gpu_check --tiny --device cpu                   # the same steps, tiny: here

For each shared data set (Chinese, English): a fine-tune with the platform's default recipe on
500 random labels and on all of train.csv (seed-0 draws; on a GPU, trainer.train.
accelerator_batch picks the batch for big runs), macro-F1 on test.csv beside TF-IDF + LR on the
same labels, training seconds and examples per second. Then scoring throughput of the
all-labels Chinese model on test.csv in half precision, and the largest difference of its
probabilities from an fp32 pass. Last, the fine-tune loop (python -m trainer.simulate,
--learner finetune): margin against random, 3 seeds, 100 + 100 a round to 1,000 labels, on the
English data (where ranking is hard; --loop-data to change). Writes gpu_check.json and
gpu_check.md into --out and prints the table.

Runs where torch, transformers, scikit-learn and this repository's trainer/ and bench/ are (no
Django): see docs/training.md, "On a GPU", for carrying the default model and the data there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fine_tune import baseline_scores, draw_rows, read_rows
from bench.support import ROOT, SHARED

DATA_SETS = ("zh_shopping_reviews", "clothing_reviews")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=SHARED)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "gpu_check")
    parser.add_argument("--tiny", action="store_true",
                        help="every step at toy sizes (a dry run of the script on CPU)")
    parser.add_argument("--loop-data", default="clothing_reviews")
    parser.add_argument("--skip-loop", action="store_true")
    return parser.parse_args()


def fine_tune(data: Path, n: int | None, args) -> tuple[dict, Path]:
    """One fine-tune on n labels (None: all of train.csv); (its row, its saved folder)."""
    from trainer.config import TrainConfig
    from trainer.train import train

    train_rows = len(read_rows(data / "train.csv"))
    n = min(n or train_rows, 60 if args.tiny else train_rows)
    test_rows = 40 if args.tiny else len(read_rows(data / "test.csv"))
    draw = draw_rows(data, n, test_rows, seed=0)
    folder = Path(tempfile.mkdtemp(prefix=f"gpu-check-{data.name}-{n}-"))
    config = TrainConfig(device=args.device, max_steps=6 if args.tiny else None)
    result = train(texts=draw.texts, labels=draw.labels, label_names=draw.names, config=config,
                   output_dir=folder, eval_texts=draw.test_texts, eval_labels=draw.test_labels)
    epochs = max(h["epoch"] for h in result.history)
    summary = json.loads((folder / "training.json").read_text())
    return {
        "data": data.name, "labels": n, "test_rows": test_rows, "device": result.device,
        "macro_f1": round(result.metrics["macro_f1"], 4),
        "tfidf_lr_macro_f1": baseline_scores(draw)["macro_f1"],
        "train_s": result.duration_seconds,
        "examples_per_s": round(result.num_train * epochs / result.duration_seconds, 1),
        "steps_per_s": round(len(result.history) / result.duration_seconds, 2),
        "batch": result.config["batch_size"], "lr_factor": summary["learning_rate_factor"],
        "epochs_run": epochs,
    }, folder


def scoring(folder: Path, data: Path, args) -> dict:
    """Reviews/s in half precision, and max |p_half - p_fp32| over the same texts."""
    import trainer.predict as predict

    texts = [row["text"] for row in read_rows(data / "test.csv")][:100 if args.tiny else None]
    tokenizer, model = predict.load_scorer(str(folder), device=args.device)
    predict.predict_proba(model, tokenizer, texts[:64], device=args.device)  # warm-up
    _sync(args.device)
    started = time.perf_counter()
    half = predict.predict_proba(model, tokenizer, texts, device=args.device)
    _sync(args.device)
    seconds = time.perf_counter() - started
    predict.HALF_PRECISION = False
    try:
        started = time.perf_counter()
        full = predict.predict_proba(model, tokenizer, texts, device=args.device)
        _sync(args.device)
        fp32_seconds = time.perf_counter() - started
    finally:
        predict.HALF_PRECISION = True
    return {"texts": len(texts), "reviews_per_s": round(len(texts) / seconds, 1),
            "fp32_reviews_per_s": round(len(texts) / fp32_seconds, 1),
            "max_abs_diff_vs_fp32": round(float(abs(half - full).max()), 5),
            "same_argmax": round(float((half.argmax(1) == full.argmax(1)).mean()), 4)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def loop(data: Path, args) -> dict:
    """The fine-tune loop, margin vs random, through trainer.simulate; its summary."""
    out = Path(tempfile.mkdtemp(prefix="gpu-check-loop-"))
    sizes = (["--seed-size", "20", "--batch-size", "20", "--max-labels", "60",
              "--pool-subsample", "200", "--eval-subsample", "100", "--max-steps", "4"]
             if args.tiny else
             ["--seed-size", "100", "--batch-size", "100", "--max-labels", "1000",
              "--pool-subsample", "4000", "--eval-subsample", "2000"])
    columns = "title,text" if "clothing" in data.name else "text"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainer.simulate", "--pool", str(data / "train.csv"),
                    "--eval", str(data / "test.csv"), "--text-columns", columns,
                    "--learner", "finetune", "--strategies", "random,margin",
                    "--seeds", "0,1" if args.tiny else "0,1,2", "--device", args.device,
                    "--jobs", "2" if args.tiny else "6", "--out-dir", str(out), *sizes],
                   check=True, cwd=ROOT)
    curves: dict[str, dict[int, list[float]]] = {}
    import csv

    with open(out / "results.csv", newline="") as f:
        for row in csv.DictReader(f):
            curves.setdefault(row["strategy"], {}).setdefault(int(row["labels"]), []).append(
                float(row["macro_f1"]))
    means = {strategy: {labels: round(sum(v) / len(v), 4) for labels, v in sorted(c.items())}
             for strategy, c in curves.items()}
    return {"data": data.name, "seconds": round(time.perf_counter() - started, 1),
            "mean_macro_f1": means}


def table(runs: list[dict], score: dict, looped: dict | None) -> str:
    lines = ["| run | macro-F1 | TF-IDF + LR | train s | examples/s | steps/s | batch | lr x |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['data']}, {r['labels']:,} labels | {r['macro_f1']:.3f} | "
                     f"{r['tfidf_lr_macro_f1']:.3f} | {r['train_s']:.1f} | "
                     f"{r['examples_per_s']:,.0f} | {r['steps_per_s']} | {r['batch']} | "
                     f"{r['lr_factor']:.2f} |")
    lines += ["", f"Scoring ({score['texts']:,} Chinese test texts): {score['reviews_per_s']:,.0f}"
              f" reviews/s half precision, {score['fp32_reviews_per_s']:,.0f} fp32; max "
              f"|p - p_fp32| {score['max_abs_diff_vs_fp32']}, same label {score['same_argmax']}"]
    if looped:
        lines += ["", f"Fine-tune loop, {looped['data']} ({looped['seconds']} s), mean macro-F1:",
                  "", "| labels | " + " | ".join(looped["mean_macro_f1"]) + " |",
                  "|---|" + "---|" * len(looped["mean_macro_f1"])]
        points = sorted({n for c in looped["mean_macro_f1"].values() for n in c})
        for n in points:
            lines.append(f"| {n} | " + " | ".join(
                str(c.get(n, "")) for c in looped["mean_macro_f1"].values()) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs, folders = [], {}
    for name in DATA_SETS:
        for n in (500, None):
            row, folder = fine_tune(args.data_root / name, n, args)
            runs.append(row)
            folders[name, n] = folder
            print(json.dumps(row), file=sys.stderr, flush=True)
    score = scoring(folders["zh_shopping_reviews", None], args.data_root / "zh_shopping_reviews",
                    args)
    looped = None if args.skip_loop else loop(args.data_root / args.loop_data, args)
    result = {"runs": runs, "scoring": score, "loop": looped,
              "seconds": round(time.perf_counter() - started, 1)}
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    text = table(runs, score, looped) + f"\n\nWhole check: {result['seconds']} s\n"
    (args.out / "gpu_check.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
