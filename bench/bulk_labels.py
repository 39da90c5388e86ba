"""Should fine-tunes learn from bulk labels? Exclude, down-weight or keep them, measured.

    python -m bench.bulk_labels --data zh_shopping_reviews --seeds 10 11 12 13 14
    python -m bench.bulk_labels --data clothing_reviews --seeds 10 11 12 13 14

The product's case, simulated on a shared data set's train.csv (the oracle) and scored on its
test.csv: a person labels --single random items one by one, and makes --actions bulk actions:
each opens "more like this" on one of their labeled items (the nearest --per-action open items
by the base encoder's stored embeddings) and gives the whole selection that item's label,
after deselecting each item whose true label differs with probability --notice (people skim).
Then the model learns from (a) the single labels only (bulk labels excluded), (b) all of them,
(c) all, bulk labels weighing --weight. Two learners: logistic regression on the frozen
embeddings (the fast loop's head) and TF-IDF + logistic regression (the baseline), each with
balanced class weights; macro-F1 on the whole test file, mean and spread over seeds.
"""

import argparse
import statistics

import numpy as np

from bench.support import SHARED

TEXT_COLUMNS = {"clothing_reviews": ["title", "text"], "zh_shopping_reviews": ["text"]}


def _bulk(emb: np.ndarray, y: np.ndarray, single: np.ndarray, rng, *, actions: int,
          per_action: int, notice: float) -> tuple[np.ndarray, np.ndarray]:
    """(item rows, given labels) of the bulk actions."""
    taken = set(single.tolist())
    rows, given = [], []
    for seed_row in rng.choice(single, size=actions, replace=True):
        scores = emb @ emb[seed_row]
        scores[list(taken)] = -np.inf
        picks = np.argpartition(-scores, per_action)[:per_action]
        for row in picks:
            if y[row] != y[seed_row] and rng.random() < notice:
                continue  # deselected: the person saw it does not belong
            rows.append(int(row))
            given.append(y[seed_row])
            taken.add(int(row))
    return np.asarray(rows, dtype=int), np.asarray(given)


def _score(kind: str, x_train, y_train, weights, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    model = LogisticRegression(max_iter=2000, class_weight="balanced", C=1.0 if kind == "head"
                               else 10.0)
    model.fit(x_train, y_train, sample_weight=weights)
    return f1_score(y_test, model.predict(x_test), average="macro")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(TEXT_COLUMNS), default="zh_shopping_reviews")
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13, 14])
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--actions", type=int, default=30)
    parser.add_argument("--per-action", type=int, default=20)
    parser.add_argument("--notice", type=float, default=0.5)
    parser.add_argument("--weight", type=float, default=0.3)
    args = parser.parse_args()

    from sklearn.feature_extraction.text import TfidfVectorizer

    from trainer.simulation.inputs import cached_embeddings, read_labeled_csv

    folder = SHARED / args.data
    train_x, train_y = read_labeled_csv(str(folder / "train.csv"), TEXT_COLUMNS[args.data],
                                        "label")
    test_x, test_y = read_labeled_csv(str(folder / "test.csv"), TEXT_COLUMNS[args.data], "label")
    emb = cached_embeddings(train_x)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    test_emb = cached_embeddings(test_x)
    test_emb = test_emb / np.linalg.norm(test_emb, axis=1, keepdims=True)
    y, y_test = np.asarray(train_y), np.asarray(test_y)
    char = args.data.startswith("zh")
    tfidf = TfidfVectorizer(analyzer="char_wb" if char else "word",
                            ngram_range=(1, 3) if char else (1, 2), min_df=2, sublinear_tf=True)
    tf_train, tf_test = tfidf.fit_transform(train_x), tfidf.transform(test_x)

    results: dict[tuple[str, str], list[float]] = {}
    precision = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        single = rng.choice(len(y), size=args.single, replace=False)
        bulk_rows, bulk_given = _bulk(emb, y, single, rng, actions=args.actions,
                                      per_action=args.per_action, notice=args.notice)
        precision.append(float(np.mean(bulk_given == y[bulk_rows])))
        rows = np.concatenate([single, bulk_rows])
        labels = np.concatenate([y[single], bulk_given])
        plans = {"exclude": (single, y[single], None),
                 "keep (weight 1)": (rows, labels, None),
                 f"down-weight ({args.weight})": (rows, labels, np.concatenate(
                     [np.ones(len(single)), np.full(len(bulk_rows), args.weight)]))}
        for plan, (r, lab, w) in plans.items():
            results.setdefault(("head", plan), []).append(
                _score("head", emb[r], lab, w, test_emb, y_test))
            results.setdefault(("tfidf", plan), []).append(
                _score("tfidf", tf_train[r], lab, w, tf_test, y_test))
    print(f"\n{args.data}: {args.single} single labels + {args.actions} bulk actions of "
          f"{args.per_action} (notice {args.notice}); bulk labels right "
          f"{statistics.mean(precision):.1%} of the time; seeds {args.seeds}; "
          f"macro-F1 on {len(y_test):,} test rows\n")
    print("| bulk labels | head on embeddings | TF-IDF + LR |\n|---|---|---|")
    for plan in dict.fromkeys(p for _, p in results):
        cells = []
        for learner in ("head", "tfidf"):
            values = results[(learner, plan)]
            cells.append(f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}")
        print(f"| {plan} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
