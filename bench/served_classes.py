"""Benchmark: what the product loop's served versions get right, class by class.

    python -m bench.served_classes bench/out/e1-clothing-tune-val10 [more out-dirs]

Reads a `python -m trainer.simulate --learner product` run's out-dir (its config.json, the
rows each run labeled in runs/<strategy>-<seed>.labels.csv and the cached fine-tunes in
finetunes/) and prints, for every strategy, seed and fine-tune, per class: the share of the
labels, precision, recall and F1 on the evaluation rows, and the share of rows the version
predicts as that class. Trains nothing: a fine-tune missing from the cache (another recipe,
a run not finished) is named and skipped.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np


def class_rows(out_dir: Path) -> list[dict]:
    from trainer.evaluate import classification_metrics
    from trainer.simulation.inputs import SimConfig, load_data
    from trainer.simulation.product import finetune_cache, product_variant, scored_candidates

    cfg = SimConfig(**json.loads((out_dir / "config.json").read_text()))
    pool_x, pool_y, _, eval_y, names = load_data(cfg)
    y_eval = np.array([names.index(v) for v in eval_y])
    found = []
    for strategy in cfg.strategies:
        base = product_variant(strategy)[0]
        for seed in cfg.seeds:
            picked = out_dir / "runs" / f"{strategy}-{seed}.labels.csv"
            if not picked.exists():
                print(f"{picked}: missing (run not finished?)", file=sys.stderr)
                continue
            with picked.open(newline="") as f:
                order = [int(row["pool_row"]) for row in csv.DictReader(f)]
            for n in sorted(set(cfg.finetune_at) or {cfg.max_labels}):
                if n > len(order):
                    continue
                labeled = order[:n]
                cache = finetune_cache(cfg, seed, labeled,
                                       scored_candidates(cfg, seed, labeled, len(pool_x), base))
                if not cache.exists():
                    print(f"{strategy} seed {seed} at {n}: no cached fine-tune", file=sys.stderr)
                    continue
                predicted = np.load(cache)["proba"].argmax(axis=1)
                metrics = classification_metrics(y_eval, predicted, names)
                labeled_counts = np.bincount([names.index(pool_y[i]) for i in labeled],
                                             minlength=len(names))
                predicted_counts = np.bincount(predicted, minlength=len(names))
                for k, name in enumerate(names):
                    scores = metrics["per_class"][name]
                    found.append({
                        "strategy": strategy, "seed": seed, "labels": n, "class": name,
                        "labeled_share": round(labeled_counts[k] / n, 3),
                        **{key: round(scores[key], 3) for key in ("precision", "recall", "f1")},
                        "predicted_share": round(predicted_counts[k] / len(predicted), 3),
                        "macro_f1": round(metrics["macro_f1"], 3),
                    })
    return found


def markdown(rows: list[dict]) -> str:
    fields = ["strategy", "seed", "labels", "class", "labeled_share", "precision", "recall",
              "f1", "predicted_share", "macro_f1"]
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(str(row[f]) for f in fields) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dirs", nargs="+", type=Path, help="product-loop out-dirs")
    a = p.parse_args(argv)
    for out_dir in a.out_dirs:
        print(f"## {out_dir}\n\n{markdown(class_rows(out_dir))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
