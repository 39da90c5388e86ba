"""Benchmark: the zero-shot scorer (no labels) against TF-IDF + LR on 100 and 500 labels.

    python -m bench.zero_shot                   # the report: full test.csv of both sets
    python -m bench.zero_shot --tune            # the choices: held-out train.csv rows
    python -m bench.zero_shot --prefixed 1000   # + items re-embedded with "query: " (1,000 rows)

Report: the platform's zero-shot scorer (trainer.zero_shot) with the default descriptions of
the data set's label names, on the stored-embedding convention (every item embedded once by
the base encoder on its raw text, mean pooled, as the pool is), macro-F1 and per-class F1 on
every test.csv row (and, for comparison, the items centred on the pool's mean, the pool
being train.csv); beside it TF-IDF + logistic regression (trainer.baseline) trained on 100
and 500 random train.csv labels (seeds 0, 1, 2: mean ± std). One markdown table.

--tune: what the defaults were chosen on, never test.csv: 3,000 random train.csv rows per
set (seed 2026). Macro-F1 of each candidate description template and prefix, with and
without centring, also with the label names written in Chinese three ways, then the
log-loss of the default descriptions by softmax temperature.

Embeddings are cached under bench/out/emb-cache (the simulation's cache: a second run, or a
run after `python -m trainer.simulate --learner head`, embeds nothing but the descriptions).
"""

import argparse
import csv
from pathlib import Path

import numpy as np

from bench.support import ROOT, SHARED

DATA_SETS = ("zh_shopping_reviews", "clothing_reviews")
TUNE_ROWS, TUNE_SEED = 3000, 2026
LR_LABELS, LR_SEEDS = (100, 500), (0, 1, 2)
# --tune's candidates; {name} is the label's name
TEMPLATES = ("{name}", "{name} review", "a {name} review", "a {name} comment",
             "This review is {name}.", "This is a {name} review.",
             "The sentiment of this review is {name}.", "A review with {name} sentiment.",
             "The customer's opinion of the product is {name}.",
             "I feel {name} about this product.")
TEMPLATES_ZH = ("这条评论的情感是{name}的。", "这条评论是{name}。", "一条{name}的评论。",
                "评论情感：{name}")
PREFIXES = ("query: ", "passage: ", "")
# the labels named in Chinese, three ways (--tune only: does the rule hold for such names?)
CHINESE_NAMES = ({"negative": "差评", "neutral": "中评", "positive": "好评"},
                 {"negative": "负面", "neutral": "中性", "positive": "正面"},
                 {"negative": "消极", "neutral": "中立", "positive": "积极"})
TEMPERATURES = (0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04)


def read_set(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(texts, labels, columns): title and text joined as the simulation and the import do."""
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    columns = ["title", "text"] if "title" in header else ["text"]
    from trainer.simulation.inputs import read_labeled_csv

    texts, labels = read_labeled_csv(str(path), columns, "label")
    return texts, labels, columns


def stored_embeddings(texts: list[str], model: str, prefix: str = "") -> np.ndarray:
    """The base encoder's embeddings of texts (raw, mean pooled), cached like the simulation's."""
    from trainer.simulation.inputs import cached_embeddings

    return cached_embeddings([prefix + t for t in texts], model=model, max_length=128,
                             cache_dir=str(ROOT / "bench" / "out" / "emb-cache"))


def f1s(y_true, y_pred, names: list[str]) -> tuple[float, list[float]]:
    from sklearn.metrics import f1_score

    per_class = f1_score(y_true, y_pred, labels=names, average=None, zero_division=0)
    return float(np.mean(per_class)), [float(v) for v in per_class]


def description_emb(names: list[str], model: str) -> np.ndarray:
    """The product's default descriptions of names, embedded (trainer.zero_shot)."""
    from trainer import zero_shot

    return zero_shot.embed_descriptions(zero_shot.describe([{"name": n} for n in names]),
                                        model_name=model)


def report(args) -> list[str]:
    from trainer.baseline import tfidf_logreg
    from trainer.zero_shot import pool_center, zero_shot_proba

    lines = ["| data set | model | labels | macro-F1 | F1 per class |", "|---|---|---|---|---|"]
    for name in args.sets:
        train_x, train_y, _ = read_set(SHARED / name / "train.csv")
        test_x, test_y, _ = read_set(SHARED / name / "test.csv")
        names = sorted(set(train_y))
        items = stored_embeddings(test_x, args.model)
        desc = description_emb(names, args.model)
        proba = zero_shot_proba(items, desc)
        macro, per = f1s(test_y, [names[i] for i in proba.argmax(1)], names)
        lines.append(f"| {name} ({len(test_x):,} test rows) | zero-shot, default descriptions "
                     f"({' / '.join(names)}) | 0 | **{macro:.3f}** | "
                     f"{' / '.join(f'{v:.3f}' for v in per)} |")
        center = pool_center(stored_embeddings(train_x, args.model))
        macro_c, per_c = f1s(test_y, [names[i] for i in zero_shot_proba(
            items, desc, center=center).argmax(1)], names)
        lines.append(f"| {name} | the same, items centred on the pool (train.csv) | 0 | "
                     f"{macro_c:.3f} | {' / '.join(f'{v:.3f}' for v in per_c)} |")
        if args.prefixed:
            rows = np.random.default_rng(0).choice(len(test_x), min(args.prefixed, len(test_x)),
                                                   replace=False)
            sub_x, sub_y = [test_x[i] for i in rows], [test_y[i] for i in rows]
            for prefix in ("query: ",):
                emb = stored_embeddings(sub_x, args.model, prefix)
                macro_p, per_p = f1s(sub_y, [names[i] for i in zero_shot_proba(
                    emb, desc).argmax(1)], names)
                macro_s, _ = f1s(sub_y, [names[i] for i in proba[rows].argmax(1)], names)
                lines.append(f"| {name} ({len(rows):,} test rows) | zero-shot, items "
                             f"re-embedded with {prefix.strip()!r} (stored items on the same "
                             f"rows: {macro_s:.3f}) | 0 | {macro_p:.3f} | "
                             f"{' / '.join(f'{v:.3f}' for v in per_p)} |")
        from bench.fine_tune import labeled_sample

        for n in LR_LABELS:
            scores = []
            for seed in LR_SEEDS:
                texts, labels, _ = labeled_sample(SHARED / name, n, seed)
                scores.append(f1s(test_y, tfidf_logreg(texts, labels).predict(test_x), names))
            macros = [s[0] for s in scores]
            per = np.mean([s[1] for s in scores], axis=0)
            lines.append(f"| {name} | TF-IDF + LR, random labels (seeds 0-2) | {n} | "
                         f"{np.mean(macros):.3f} ± {np.std(macros):.3f} | "
                         f"{' / '.join(f'{v:.3f}' for v in per)} |")
    return lines


def tune(args) -> list[str]:
    from sklearn.metrics import log_loss

    from trainer.predict import embed_with_base
    from trainer.zero_shot import (
        DESCRIPTION_MAX_LENGTH,
        DESCRIPTION_PREFIX,
        DESCRIPTION_TEMPLATE,
        DESCRIPTION_TEMPLATE_ZH,
        pool_center,
        softmax,
        zero_shot_similarity,
    )

    english = [("English", {}, DESCRIPTION_PREFIX, t) for t in TEMPLATES]
    english += [("English", {}, p, DESCRIPTION_TEMPLATE) for p in PREFIXES
                if p != DESCRIPTION_PREFIX]
    chinese = [(f"Chinese ({shown['negative']}…)", shown, DESCRIPTION_PREFIX, t)
               for shown in CHINESE_NAMES
               for t in (DESCRIPTION_TEMPLATE, DESCRIPTION_TEMPLATE_ZH, *TEMPLATES_ZH[1:])]
    candidates = english + chinese
    lines = ["| data set | names | prefix | template | macro-F1 | centred on the pool |",
             "|---|---|---|---|---|---|"]
    slices = {}
    for name in args.sets:
        train_x, train_y, _ = read_set(SHARED / name / "train.csv")
        emb = stored_embeddings(train_x, args.model)
        rows = np.random.default_rng(TUNE_SEED).choice(len(train_x), TUNE_ROWS, replace=False)
        names = sorted(set(train_y))
        y = np.array([names.index(train_y[i]) for i in rows])
        center = pool_center(emb)
        slices[name] = (emb[rows], y, names)
        texts = [prefix + template.format(name=shown.get(n, n))
                 for _, shown, prefix, template in candidates for n in names]
        all_desc = embed_with_base(texts, model_name=args.model,
                                   max_length=DESCRIPTION_MAX_LENGTH)
        classes = list(range(len(names)))
        for i, (label, _, prefix, template) in enumerate(candidates):
            desc = all_desc[i * len(names):(i + 1) * len(names)]
            raw = f1s(y, zero_shot_similarity(emb[rows], desc).argmax(1), classes)[0]
            cen = f1s(y, zero_shot_similarity(emb[rows], desc, center=center).argmax(1),
                      classes)[0]
            lines.append(f"| {name} | {label} | {prefix!r} | {template} | {raw:.3f} | "
                         f"{cen:.3f} |")
    lines += ["", "Log-loss of the default descriptions by temperature:", "",
              "| data set | " + " | ".join(str(t) for t in TEMPERATURES) + " |",
              "|---|" + "---|" * len(TEMPERATURES)]
    total = np.zeros(len(TEMPERATURES))
    for name, (x, y, names) in slices.items():
        sim = zero_shot_similarity(x, description_emb(names, args.model))
        losses = np.array([log_loss(y, softmax(sim / t), labels=range(len(names)))
                           for t in TEMPERATURES])
        total += losses
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in losses) + " |")
    lines.append("| both | " + " | ".join(f"{v:.3f}" for v in total) + " |")
    lines.append(f"\nlowest together: T = {TEMPERATURES[int(np.argmin(total))]}")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(DATA_SETS))
    parser.add_argument("--model", default="", help="base encoder ('' = the default)")
    parser.add_argument("--tune", action="store_true", help="held-out train.csv rows instead")
    parser.add_argument("--prefixed", type=int, default=0,
                        help="also re-embed this many test rows with an e5 prefix")
    args = parser.parse_args(argv)
    from trainer.simulation.inputs import quiet_transformers

    quiet_transformers()
    print("\n".join(tune(args) if args.tune else report(args)))


if __name__ == "__main__":
    main()
