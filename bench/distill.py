"""Benchmark: distill a fine-tuned version into a shallower student; quality kept vs speed.

    python -m bench.distill --threads 2 --plot docs/bench/distillation.png > bench/out/distill.jsonl

For each data set: draws N labeled rows and a pool of --pool further rows (their labels
unused) from train.csv, and --test-rows rows of test.csv (seed --seed). Fits TF-IDF + LR on
the N labels; fine-tunes the teacher (the default model, full recipe) on them; then for
each --layers L trains two L-block students from the teacher's bottom blocks:
- "distilled": on the teacher's predictions over labels + pool (trainer.distill defaults),
- "labels only": the same start and steps' recipe on the N human labels alone (the control:
  what the teacher's view of the pool adds).
Every model is scored on the test rows as the platform serves it (trainer.predict.load_scorer:
ONNX Runtime on CPU), and the serving speed is timed side by side, teacher and students in
turn, --repeats times (the median kept), so the ratios hold on a noisy machine. Prints one
JSON line per run and a Markdown table (stderr: progress).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.fine_tune import baseline_scores, draw_rows, folder_bytes, log
from bench.support import SHARED
from trainer.config import TrainConfig
from trainer.distill import DistillConfig, distill
from trainer.evaluate import classification_metrics
from trainer.predict import load_scorer, predict_proba
from trainer.train import train


def _served(folder: Path, texts, max_length: int, threads: int):
    tokenizer, model = load_scorer(str(folder), device="cpu", threads=threads)
    return lambda: predict_proba(model, tokenizer, texts, max_length=max_length, device="cpu")


def _score(predict, labels, names) -> dict:
    proba = predict()
    metrics = classification_metrics([names.index(y) for y in labels],
                                     proba.argmax(axis=1).tolist(), names)
    return {"macro_f1": round(metrics["macro_f1"], 4),
            "accuracy": round(metrics["accuracy"], 4)}, proba.argmax(axis=1)


def bench_data_set(data: Path, args) -> list[dict]:
    draw = draw_rows(data, args.n, args.test_rows, args.seed, pool=args.pool)
    names, texts, labels, pool_texts = draw.names, draw.texts, draw.labels, draw.pool_texts
    test_texts, test_labels = draw.test_texts, draw.test_labels
    common = {"data": data.name, "n_labels": args.n, "pool": len(pool_texts),
              "test_rows": len(test_texts)}
    results = [{**common, **baseline_scores(draw)}]

    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher"
        log(f"{data.name}: teacher fine-tune on {args.n} labels")
        fitted = train(texts=texts, labels=labels, label_names=names, output_dir=teacher,
                       config=TrainConfig(model_name=args.model, num_threads=args.threads,
                                          device="cpu"))
        max_length = fitted.config["max_length"]
        depth = json.loads((teacher / "config.json").read_text())["num_hidden_layers"]
        runs = [(f"teacher ({depth} layers)", teacher, fitted.duration_seconds)]
        for layers in args.layers:
            for kind, pool_used, weight in (("distilled", pool_texts, 0.5),
                                            ("labels only", [], 1.0)):
                out = Path(tmp) / f"{kind}-{layers}"
                log(f"{data.name}: {kind} student, {layers} layers")
                config = DistillConfig(layers=layers, num_threads=args.threads, device="cpu",
                                       label_weight=weight,
                                       epochs=args.epochs if pool_used else args.label_epochs)
                result = distill(teacher_dir=teacher, pool_texts=pool_used, output_dir=out,
                                 labeled_texts=texts, labels=labels, config=config)
                runs.append((f"{kind} ({layers} layers)", out, result.duration_seconds))

        log(f"{data.name}: scoring the test rows as served, {args.repeats} rounds")
        predictors = [_served(folder, test_texts, max_length, args.threads)
                      for _, folder, _ in runs]
        for predict in predictors:
            predict()  # warm-up: ONNX sessions, caches
        seconds = [[] for _ in runs]
        for _ in range(args.repeats):
            for i, predict in enumerate(predictors):
                started = time.perf_counter()
                predict()
                seconds[i].append(time.perf_counter() - started)
        teacher_pred, teacher_s = None, statistics.median(seconds[0])
        for (name, folder, train_s), predict, timed in zip(runs, predictors, seconds,
                                                           strict=True):
            quality, pred = _score(predict, test_labels, names)
            teacher_pred = pred if teacher_pred is None else teacher_pred
            median, agreement = statistics.median(timed), float((pred == teacher_pred).mean())
            results.append({**common, "run": name, **quality, "train_seconds": round(train_s, 1),
                            "agreement_with_teacher": round(agreement, 4),
                            "texts_per_second": round(len(test_texts) / median, 1),
                            "speedup": round(teacher_s / median, 2),
                            "bytes": folder_bytes(folder)})
    for row in results:
        print(json.dumps(row), flush=True)
    return results


def markdown_table(results: list[dict]) -> str:
    lines = ["| data | run | macro-F1 | accuracy | agrees with teacher | texts/s | speed-up "
             "| MB | train s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [r["data"], r["run"], f"{r['macro_f1']:.3f}", f"{r['accuracy']:.3f}",
                 r.get("agreement_with_teacher", "–"), r.get("texts_per_second", "–"),
                 f"{r['speedup']}x" if "speedup" in r else "–",
                 f"{r['bytes'] / 1e6:.0f}" if "bytes" in r else "–", r.get("train_seconds", "–")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Macro-F1 against texts per second, one panel per data set; TF-IDF + LR as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["data"] for r in results))
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.2), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        rows = [r for r in results if r["data"] == name]
        for r in rows:
            if "texts_per_second" not in r:
                ax.axhline(r["macro_f1"], color="grey", linestyle="--", linewidth=1)
                ax.annotate(r["run"], (0.01, r["macro_f1"]), xycoords=("axes fraction", "data"),
                            va="bottom", fontsize=8, color="grey")
                continue
            marker = "s" if r["run"].startswith("teacher") else \
                "o" if r["run"].startswith("distilled") else "x"
            ax.scatter(r["texts_per_second"], r["macro_f1"], marker=marker, s=60)
            ax.annotate(r["run"], (r["texts_per_second"], r["macro_f1"]), fontsize=8,
                        xytext=(5, 4), textcoords="offset points")
        ax.set_title(f"{name}: {rows[0]['n_labels']} labels, pool {rows[0]['pool']:,}")
        ax.set_xlabel("texts per second as served (ONNX Runtime, CPU)")
        ax.set_ylabel(f"macro-F1 on {rows[0]['test_rows']:,} test rows")
        ax.margins(x=0.25, y=0.15)
        ax.set_xlim(left=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+",
                        default=[SHARED / "clothing_reviews", SHARED / "zh_shopping_reviews"])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the row draws")
    parser.add_argument("--model", default="", help="teacher; default: multilingual-e5-small")
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 6])
    parser.add_argument("--epochs", type=int, default=DistillConfig.epochs,
                        help="distillation epochs over labels + pool")
    parser.add_argument("--label-epochs", type=int, default=6,
                        help="epochs of the labels-only control (its data is ~9x smaller)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=Path, help="write the quality/speed plot here (PNG)")
    parser.add_argument("--from-jsonl", type=Path,
                        help="no runs: table and plot from an earlier run's JSON lines")
    args = parser.parse_args()
    if args.from_jsonl:
        results = [json.loads(line) for line in args.from_jsonl.read_text().splitlines()
                   if line.startswith("{")]
        print(markdown_table(results))
        if args.plot:
            plot(results, args.plot)
        return

    import torch

    torch.set_num_threads(args.threads)
    results = [row for data in args.data for row in bench_data_set(data, args)]
    print(markdown_table(results))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
