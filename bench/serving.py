"""Prediction throughput of the platform's inference path against a transformers pipeline.

Requests of 32 reviews, texts truncated to 128 tokens, 2 threads; the same texts for all:

  pipeline     transformers.pipeline("text-classification", model=folder, batch_size=32,
               truncation=True, max_length=128, top_k=None) on the same saved folder
  torch-fp32   annotator.ml.serving.ServedModel.predict with ANNOTATOR_INFERENCE=torch (the
               PyTorch model, length-sorted batches, torch.inference_mode)
  onnx-fp32    the same with the default path: trainer.predict.load_scorer on CPU, the
               version exported once to ONNX (trainer.onnx_runtime), run by ONNX Runtime
  onnx-int8    the same, int8 (ANNOTATOR_SERVE_INT8=1 / ANNOTATOR_SCORING_INT8=1)
  pool-onnx-fp32  trainer.predict.predict_and_embed over all texts in one call (what pool
               scoring runs: length-bucketed batches of 64, probabilities and embeddings)

Each repeat runs the variants in turn (interleaved, so background load hits them alike)
after one warm-up pass; the median repeat is reported, with reviews per CPU-second
(reviews / the process' CPU time), which the sharing of the cores disturbs less.
Texts: the 'text' column of ../shared/data/clothing_reviews/test.csv when present, else
generated reviews. Model: --model-dir (any saved version folder) or --model (a base model
name, default the platform default, multilingual-e5-small) saved with a new, untrained
3-class head (enough for a throughput figure; the accuracy of int8 against fp32 is measured
with a trained head in docs/bench/serving.md).

    python -m bench.serving --texts 128 --repeats 1
    python -m bench.serving --model-dir var/artifacts/projects/1/v3 --repeats 7
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.support import SHARED, setup_django

DATA = SHARED / "clothing_reviews" / "test.csv"
LABELS = ["negative", "neutral", "positive"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=512, help="reviews per repeat")
    parser.add_argument("--batch", type=int, default=32, help="reviews per request")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-dir", default="", help="a saved model version folder")
    parser.add_argument("--model", default="", help="base model of the untrained head "
                        "(default: the platform default)")
    parser.add_argument("--data", default=str(DATA))
    return parser.parse_args()


def load_texts(path: str, n: int) -> tuple[list[str], str]:
    from annotator.lib.cleaning import clean_text

    if Path(path).exists():
        with open(path, newline="", encoding="utf-8") as fh:
            texts = [clean_text(row["text"]) for row in csv.DictReader(fh)]
        texts = [t for t in texts if t][:n]
        return texts, f"{path} ('text' column, first {len(texts)} non-empty)"
    rng = random.Random(0)
    words = ("the fit is great love the color fabric feels cheap runs small returned it "
             "soft comfy wash shrank perfect for summer would buy again zipper broke").split()
    texts = [" ".join(rng.choices(words, k=rng.randint(8, 90))) for _ in range(n)]
    return texts, f"{n} generated reviews (data file not found)"


def untrained_model_dir(name: str) -> str:
    from trainer.models import load_for_training

    out = tempfile.mkdtemp(prefix="bench-serving-model-")
    tokenizer, model = load_for_training(name, LABELS)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


def main() -> None:
    args = parse_args()
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("ANNOTATOR_VAR_DIR", tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_django()
    import numpy as np
    import torch
    import transformers

    from annotator.ml.serving import ServedModel
    from trainer.predict import load_scorer, predict_and_embed

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    texts, source = load_texts(args.data, args.texts)
    folder = args.model_dir or untrained_model_dir(args.model)
    requests = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]

    def served(runtime: str, quantize: bool = False) -> ServedModel:
        tokenizer, model = load_scorer(folder, device="cpu", quantize=quantize, runtime=runtime,
                                       threads=args.threads)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        return ServedModel(version_id=0, version=0, label_names=names, tokenizer=tokenizer,
                           model=model)

    fp32, onnx, int8 = served("torch"), served("onnx"), served("onnx", quantize=True)
    pipe = transformers.pipeline("text-classification", model=folder, device="cpu",
                                 batch_size=args.batch, top_k=None)

    def run_api(model: ServedModel) -> list[dict]:
        return [p for r in requests for p in model.predict(r, max_length=args.max_length)]

    def run_pool() -> list[dict]:
        proba, _ = predict_and_embed(onnx.model, onnx.tokenizer, texts,
                                     max_length=args.max_length)
        return [{"probabilities": dict(zip(onnx.label_names, row, strict=True))}
                for row in proba.tolist()]

    def run_pipeline() -> list[dict]:
        out = []
        for r in requests:
            for scores in pipe(r, truncation=True, max_length=args.max_length):
                probabilities = {s["label"]: s["score"] for s in scores}
                out.append({"label": max(probabilities, key=probabilities.get),
                            "probabilities": probabilities})
        return out

    variants = {"pipeline": run_pipeline, "torch-fp32": lambda: run_api(fp32),
                "onnx-fp32": lambda: run_api(onnx), "onnx-int8": lambda: run_api(int8),
                "pool-onnx-fp32": run_pool}
    load_before = f"{os.getloadavg()[0]:.1f}"
    outputs = {name: run() for name, run in variants.items()}  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpu_rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            started, cpu = time.perf_counter(), time.process_time()
            run()
            rates[name].append(len(texts) / (time.perf_counter() - started))
            cpu_rates[name].append(len(texts) / (time.process_time() - cpu))

    def proba(name):
        return np.array([[p["probabilities"][label] for label in fp32.label_names]
                         for p in outputs[name]])

    tokens = [len(ids) for ids in fp32.tokenizer(texts, truncation=True,
                                                 max_length=args.max_length)["input_ids"]]
    print(f"texts: {source}; tokens per text (<= {args.max_length}): median "
          f"{statistics.median(tokens):.0f}, max {max(tokens)}")
    print(f"model: {args.model_dir or (args.model or 'default') + ', untrained 3-class head'}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{args.threads} threads, requests of {args.batch}, {args.repeats} repeats (median)")
    baseline = statistics.median(rates["pipeline"])
    print(f"load average before / after: {load_before} / {os.getloadavg()[0]:.1f}")
    print("\n| variant | reviews/s (median) | min-max | vs pipeline | reviews per CPU-second |"
          "\n|---|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {min(values):.1f}-{max(values):.1f} | "
              f"{median / baseline:.2f}x | {statistics.median(cpu_rates[name]):.1f} |")
    for name in [n for n in variants if n != "torch-fp32"]:
        same = np.mean(proba(name).argmax(1) == proba("torch-fp32").argmax(1))
        diff = np.abs(proba(name) - proba("torch-fp32")).max()
        print(f"\n{name} vs torch-fp32: same label {same:.1%}, max |probability difference| "
              f"{diff:.4f}", end="")
    print()


if __name__ == "__main__":
    main()
