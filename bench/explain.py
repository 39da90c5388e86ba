"""Benchmark: are the explanations faithful on real reviews, and how long does one take?

    python -m bench.explain --data ../shared/data/clothing_reviews --plot docs/bench/explain.png
    python -m bench.explain --data ../shared/data/zh_shopping_reviews
    python -m bench.explain --model-dir <a saved version> ...   # explain an existing version

Fine-tunes the default model on N random train.csv rows (or loads --model-dir), then explains
--texts test.csv reviews (trainer.explain: occlusion on the ONNX scorer) and measures
deletion: the drop in the predicted label's probability when the top k words of a ranking
are taken out together. A faithful ranking drops it more than k random words do; the
simple baseline ranks words by the TF-IDF + logistic-regression model's weights (fitted on
the same labels). Also: seconds per explanation and words per review. --max-tokens compares
token budgets (trainer.explain: coarse to fine) with one variant per word, in the same run on
the same texts: time and deletion drop side by side. --plot draws a few explained English
reviews (highlighted as on the labeling page) with the last budget.
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.fine_tune import labeled_sample, read_rows, review_text
from bench.support import SHARED


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    keep, at = [], 0
    for start, end in sorted(spans):
        keep.append(text[at:start])
        at = end
    return " ".join(" ".join(keep + [text[at:]]).split())


def _tfidf_ranking(pipeline, words, label: str) -> list[int]:
    """Words ordered by how much the baseline's weights favour `label` (char n-grams summed)."""
    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    classes = list(classifier.classes_)
    if len(classes) == 2:
        sign = 1 if classes.index(label) == 1 else -1
        weights = sign * classifier.coef_[0]
    else:
        weights = classifier.coef_[classes.index(label)]
    scores = [float(vectorizer.transform([w.text]).dot(weights)[0]) for w in words]
    return sorted(range(len(words)), key=lambda i: -scores[i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "clothing_reviews")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--max-tokens", nargs="+", default=["0", "3072", "2048"],
                        help="token budgets to compare in the same run (0: one variant per word)")
    parser.add_argument("--chars", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="explain only test reviews of MIN to MAX characters")
    parser.add_argument("--keep-model", type=Path, default=None,
                        help="save the fine-tuned version here (reuse it with --model-dir)")
    args = parser.parse_args()

    import torch

    from trainer.baseline import tfidf_logreg
    from trainer.config import TrainConfig
    from trainer.explain import explain
    from trainer.predict import load_scorer, predict_proba
    from trainer.train import train

    torch.set_num_threads(args.threads)
    texts, labels, names = labeled_sample(args.data, args.n, args.seed)
    test = [review_text(r) for r in read_rows(args.data / "test.csv")]
    if args.chars:
        test = [t for t in test if args.chars[0] <= len(t) <= args.chars[1]]
    test = random.Random(args.seed + 1).sample(test, min(args.texts, len(test)))
    baseline = tfidf_logreg(texts, labels)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model_dir
        max_length = 256
        if folder is not None and (folder / "training.json").exists():
            max_length = json.loads((folder / "training.json").read_text()).get(
                "config", {}).get("max_length") or max_length
        if folder is None:
            folder = Path(tmp)
            result = train(texts=texts, labels=labels, label_names=names, output_dir=folder,
                           config=TrainConfig(num_threads=args.threads))
            max_length = result.config["max_length"]
            if args.keep_model:
                import shutil

                shutil.copytree(folder, args.keep_model, dirs_exist_ok=True)
        tokenizer, model = load_scorer(str(folder), threads=args.threads)
        explain(model, tokenizer, test[0], max_length=max_length)  # warm up
        rng = random.Random(args.seed)
        methods = [f"occlusion@{b}" if b != "0" else "occlusion" for b in args.max_tokens]
        drops = {name: {k: [] for k in args.k} for name in [*methods, "tfidf_lr", "random"]}
        seconds = {name: [] for name in methods}
        seconds_300 = {name: [] for name in methods}  # reviews of 250-350 characters
        word_counts, shown = [], []
        for text in test:
            found_by = {}
            for name, budget in zip(methods, args.max_tokens, strict=True):
                started = time.perf_counter()
                found_by[name] = explain(model, tokenizer, text, max_length=max_length,
                                         max_tokens=int(budget) or None)
                seconds[name].append(time.perf_counter() - started)
                if 250 <= len(text) <= 350:
                    seconds_300[name].append(seconds[name][-1])
            found = found_by[methods[0]]
            words = found.words
            word_counts.append(len(words))
            label = names[found.label_index]
            rankings = {name: sorted(range(len(words)), key=lambda i, f=f: -f.words[i].score)
                        for name, f in found_by.items()}
            rankings["tfidf_lr"] = _tfidf_ranking(baseline, words, label)
            rankings["random"] = rng.sample(range(len(words)), len(words))
            variants, keys = [], []
            for name, order in rankings.items():
                for k in args.k:
                    if k < len(words):
                        variants.append(_without(text, [(words[i].start, words[i].end)
                                                        for i in order[:k]]))
                        keys.append((name, k))
            proba = predict_proba(model, tokenizer, variants, max_length=max_length)
            for (name, k), row in zip(keys, proba, strict=True):
                drops[name][k].append(found.probability - float(row[found.label_index]))
            if len(shown) < 4 and 12 <= len(words) <= 40:
                shown.append((text, label, found_by[methods[-1]]))

    def timing(values):
        if not values:
            return None
        return {"median": round(statistics.median(values), 2),
                "p95": round(float(np.percentile(values, 95)), 2), "n": len(values)}

    report = {
        "data": args.data.name, "n_labels": args.n, "texts": len(test),
        "deletion_drop": {name: {k: round(statistics.mean(v), 3) for k, v in by_k.items() if v}
                          for name, by_k in drops.items()},
        "seconds_per_explanation": {name: timing(v) for name, v in seconds.items()},
        "seconds_250_350_chars": {name: timing(v) for name, v in seconds_300.items()},
        "speedup_median": {name: round(statistics.median(seconds[methods[0]])
                                       / statistics.median(v), 2)
                           for name, v in seconds.items()},
        "words_per_review": {"median": statistics.median(word_counts),
                             "max": max(word_counts)},
        "threads": args.threads,
    }
    if args.plot:
        plot(shown, args.plot)
    print(json.dumps(report))


def plot(shown, path: Path) -> None:
    """The explained reviews, words tinted as the labeling page does (green: toward the
    label, red: away from it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9, 0.9 + 1.25 * len(shown)))
    renderer = fig.canvas.get_renderer()
    y = 0.97
    for text, label, found in shown:
        fig.text(0.02, y, f"model reads: {label} ({found.probability:.0%})", fontsize=9,
                 color="#555", va="top")
        y -= 0.045 * 6 / len(shown)
        x, previous_end = 0.02, 0
        strongest = max(abs(w.score) for w in found.words) or 1
        for word in found.words:
            x += 0.008 if text[previous_end:word.start].strip() != text[previous_end:word.start] \
                else 0.001
            previous_end = word.end
            strength = abs(word.score) / strongest
            color = (0.17, 0.63, 0.17) if word.score > 0 else (0.84, 0.15, 0.16)
            box = (dict(facecolor=(*color, 0.12 + 0.5 * strength), edgecolor="none", pad=1.5)
                   if strength >= 0.15 else None)
            item = fig.text(x, y, word.text, fontsize=10, va="top", bbox=box)
            x += item.get_window_extent(renderer).width / fig.bbox.width
            if x > 0.93:
                x, y = 0.02, y - 0.035 * 6 / len(shown)
        y -= 0.07 * 6 / len(shown)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
