"""Benchmark: full fine-tune vs LoRA on N random labels, with TF-IDF + LR on the same labels.

    python -m bench.lora --threads 2 > bench/out/lora.jsonl

For each data set: draws N rows of train.csv (seed --seed) and --test-rows rows of test.csv;
fits the TF-IDF + logistic-regression baseline (trainer.baseline) on the N rows; fine-tunes
the model fully (its defaults) and with LoRA at each --lora-lr, keeping the LoRA rate with
the best macro-F1 on the run's own validation split (10% of the N rows, never test rows).
Each kept version is loaded back as the platform serves it (trainer.models.load_classifier:
a LoRA adapter merged into its base) and scored on the test rows. Prints one JSON line per
run and a Markdown table at the end (stderr: progress).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.fine_tune import baseline_scores, draw_rows, folder_bytes, log
from bench.support import SHARED
from trainer.config import TrainConfig
from trainer.evaluate import classification_metrics
from trainer.models import load_classifier
from trainer.predict import predict_proba
from trainer.train import train


def _run(texts, labels, names, config: TrainConfig, out: Path) -> dict:
    """Train into out; the run's figures (validation macro-F1, seconds, bytes, parameters)."""
    result = train(texts=texts, labels=labels, label_names=names, config=config,
                   output_dir=out)
    info = json.loads((out / "training.json").read_text())
    return {"learning_rate": config.resolved("learning_rate"),
            "val_macro_f1": round(result.val_metrics["macro_f1"], 4),
            "train_seconds": round(result.duration_seconds, 1),
            "epochs_run": max(h["epoch"] for h in result.history),
            "max_length": result.config["max_length"],
            "bytes_written": folder_bytes(out),
            "trainable_parameters": info["trainable_parameters"]}


def _test(out: Path, texts, labels, names, max_length: int) -> dict:
    """Macro-F1 on the test rows of the version as served (a LoRA adapter merged first)."""
    started = time.perf_counter()
    tokenizer, model = load_classifier(str(out), device="cpu")
    loaded = time.perf_counter() - started
    proba = predict_proba(model, tokenizer, texts, max_length=max_length, device="cpu")
    metrics = classification_metrics([names.index(y) for y in labels],
                                     proba.argmax(axis=1).tolist(), names)
    return {"macro_f1": round(metrics["macro_f1"], 4), "load_seconds": round(loaded, 1)}


def bench_data_set(data: Path, args) -> list[dict]:
    draw = draw_rows(data, args.n, args.test_rows, args.seed)
    names, texts, labels = draw.names, draw.texts, draw.labels
    test_texts, test_labels = draw.test_texts, draw.test_labels
    common = {"data": data.name, "n_labels": args.n, "test_rows": len(test_texts)}
    results = [{**common, **baseline_scores(draw)}]

    base = dict(model_name=args.model, epochs=args.epochs, num_threads=args.threads,
                device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        log(f"{data.name}: full fine-tune")
        out = Path(tmp) / "full"
        full = _run(texts, labels, names, TrainConfig(**base), out)
        results.append({**common, "run": "full fine-tune", **full,
                        **_test(out, test_texts, test_labels, names, full["max_length"])})

        candidates = []
        for lr in args.lora_lr:
            log(f"{data.name}: LoRA rank {args.rank}, learning rate {lr}")
            out = Path(tmp) / f"lora-{lr}"
            config = TrainConfig(**base, lora_rank=args.rank, lora_alpha=2 * args.rank,
                                 learning_rate=lr)
            candidates.append((_run(texts, labels, names, config, out), out))
        lora, out = max(candidates, key=lambda c: c[0]["val_macro_f1"])
        results.append({**common, "run": f"LoRA r={args.rank}", **lora,
                        "validation_choice": {c["learning_rate"]: c["val_macro_f1"]
                                              for c, _ in candidates},
                        **_test(out, test_texts, test_labels, names, lora["max_length"])})
    for row in results:
        print(json.dumps(row), flush=True)
    return results


def markdown_table(results: list[dict]) -> str:
    lines = ["| data | run | macro-F1 (test) | train s | bytes written | trainable params "
             "| lr | val macro-F1 | load s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [r["data"], r["run"], f"{r['macro_f1']:.3f}",
                 r.get("train_seconds", "–"), f"{r['bytes_written']:,}" if "bytes_written" in r
                 else "–", f"{r['trainable_parameters']:,}" if "trainable_parameters" in r
                 else "–", r.get("learning_rate", "–"), r.get("val_macro_f1", "–"),
                 r.get("load_seconds", "–")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+",
                        default=[SHARED / "clothing_reviews", SHARED / "zh_shopping_reviews"])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the row draws")
    parser.add_argument("--model", default="", help="default: multilingual-e5-small")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (alpha = 2 x rank)")
    parser.add_argument("--lora-lr", type=float, nargs="+", default=[5e-4, 1e-3],
                        help="LoRA learning rates to choose from on validation")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    results = [row for data in args.data for row in bench_data_set(data, args)]
    print(markdown_table(results))


if __name__ == "__main__":
    main()
