"""Benchmark: how many of the labels flipped at random do the suspicious-label flags find?

    python -m bench.label_noise --data ../shared/data/clothing_reviews --n 1000 --flip 0.05
    python -m bench.label_noise --data ../shared/data/zh_shopping_reviews --n 1000 --flip 0.05
    python -m bench.label_noise ... --no-fine-tune     # only the features that need no training

Draws N rows of train.csv, flips `--flip` of their labels to another class at random (the
"wrong" labels), and ranks the labels with each source of out-of-fold probabilities
(trainer.noise): TF-IDF + LR (the simple baseline), the base encoder's embeddings + LR,
the fine-tuned version's embeddings + LR (the platform: the version is trained on the noisy
labels, then K-fold LR over its embeddings), the platform's judge (the mean of that and of
TF-IDF + LR, trainer.noise.judged_out_of_fold), and the fine-tuned model's own predictions
on its training labels (in-sample: what confident learning warns against). For each: what
cleanlab flags (count, precision, recall against the flips) and precision / recall of the
top k. The data's own labels are not perfect either: a flag on an unflipped row counts as
a false alarm here even when the original star rating was the mistake.

Prints one JSON line; --plot writes a precision-recall-at-k figure.
"""

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.fine_tune import labeled_sample
from bench.support import SHARED
from trainer import noise


def flip_labels(y: list[int], n_classes: int, share: float, seed: int) -> tuple[list[int], set]:
    rng = random.Random(seed)
    flipped = set(rng.sample(range(len(y)), round(share * len(y))))
    noisy = [rng.choice([c for c in range(n_classes) if c != label]) if i in flipped else label
             for i, label in enumerate(y)]
    return noisy, flipped


def scores(ranked: list[noise.LabelIssue], flagged: list[noise.LabelIssue], flipped: set,
           ks: list[int]) -> dict:
    hits = [issue.index in flipped for issue in ranked]
    found = sum(issue.index in flipped for issue in flagged)
    return {
        "flagged": len(flagged),
        "flagged_precision": round(found / len(flagged), 3) if flagged else None,
        "flagged_recall": round(found / len(flipped), 3),
        "at_k": {k: {"precision": round(sum(hits[:k]) / k, 3),
                     "recall": round(sum(hits[:k]) / len(flipped), 3)} for k in ks},
        "curve": np.cumsum(hits).tolist(),
    }


def evaluate(proba: np.ndarray, y: list[int], flipped: set, ks: list[int]) -> dict:
    return scores(noise.rank_by_self_confidence(y, proba), noise.find_label_issues(y, proba),
                  flipped, ks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "clothing_reviews")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="", help="default: the platform default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-fine-tune", action="store_true")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from trainer.config import TrainConfig
    from trainer.predict import embed_with_base, load_scorer, predict_and_embed
    from trainer.train import train

    torch.set_num_threads(args.threads)
    texts, labels, names = labeled_sample(args.data, args.n, args.seed)
    true = [names.index(label) for label in labels]
    y, flipped = flip_labels(true, len(names), args.flip, args.seed)
    ks = sorted({len(flipped) // 2, len(flipped), 2 * len(flipped)})
    k = len(names)
    results, seconds = {}, {}

    started = time.perf_counter()
    results["tfidf_lr"] = evaluate(noise.out_of_fold_probabilities(
        noise.text_features(texts), y, n_classes=k, seed=args.seed), y, flipped, ks)
    seconds["tfidf_lr"] = time.perf_counter() - started

    started = time.perf_counter()
    base = embed_with_base(texts, model_name=args.model, max_length=256)
    results["base_embeddings_lr"] = evaluate(noise.out_of_fold_probabilities(
        base, y, n_classes=k, seed=args.seed), y, flipped, ks)
    seconds["base_embeddings_lr"] = time.perf_counter() - started

    if not args.no_fine_tune:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            result = train(texts=texts, labels=y, label_names=names, output_dir=out,
                           config=TrainConfig(model_name=args.model, num_threads=args.threads))
            seconds["fine_tune"] = time.perf_counter() - started
            started = time.perf_counter()
            tokenizer, model = load_scorer(out)
            own, tuned = predict_and_embed(model, tokenizer, texts,
                                           max_length=result.config["max_length"])
            oof = noise.out_of_fold_probabilities(tuned, y, n_classes=k, seed=args.seed)
            results["fine_tuned_embeddings_lr"] = evaluate(oof, y, flipped, ks)
            seconds["fine_tuned_embeddings_lr"] = time.perf_counter() - started
            results["fine_tuned_in_sample"] = evaluate(own, y, flipped, ks)
            results["platform_fine_tuned_embeddings_and_tfidf_mean"] = evaluate(
                noise.judged_out_of_fold(tuned, texts, y, n_classes=k, seed=args.seed),
                y, flipped, ks)

    if args.plot:
        plot(results, len(flipped), args)
    print(json.dumps({
        "data": args.data.name, "n_labels": args.n, "flipped": len(flipped),
        "flip_share": args.flip, "seed": args.seed, "classes": names,
        "results": {name: {key: value for key, value in r.items() if key != "curve"}
                    for name, r in results.items()},
        "seconds": {name: round(s, 1) for name, s in seconds.items()},
    }))


def plot(results: dict, flipped: int, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    limit = 3 * flipped
    for name, r in results.items():
        found = np.asarray(r["curve"][:limit])
        ax.plot(np.arange(1, len(found) + 1), found / flipped, label=name.replace("_", " "))
    ax.axvline(flipped, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("labels reviewed, most suspicious first")
    ax.set_ylabel("share of the flipped labels found")
    ax.set_title(f"{args.data.name}: {flipped} of {args.n} labels flipped at random")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
