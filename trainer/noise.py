"""Suspicious labels: confident learning (cleanlab) on out-of-fold probabilities.

A model scoring the very labels it was trained on agrees with most of them, wrong ones
included, so the probabilities that judge a label come from a model that did not see it:
K logistic regressions over fixed features (an encoder's embeddings, or TF-IDF), each
fitted on the other folds. The platform averages two such judges, one over the fine-tuned
version's embeddings and one over the texts' character n-grams (`judged_out_of_fold`):
on 50 of 1,000 labels flipped at random it found more of them in its top 50 and top 100
than either alone, in English and in Chinese (docs/label_review.md). cleanlab then keeps
the labels whose class the out-of-fold model finds unlikely beyond the per-class noise it
estimates, ranked by self-confidence (the out-of-fold probability of the given label:
lowest first).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class LabelIssue:
    index: int  # row in the labels given
    given: int  # the label as given
    suggested: int  # the out-of-fold model's most likely class
    self_confidence: float  # out-of-fold probability of the given label
    suggested_probability: float


def out_of_fold_probabilities(features, labels: Sequence[int], *, n_classes: int,
                              folds: int = DEFAULT_FOLDS, seed: int = 0) -> np.ndarray:
    """len(labels) x n_classes probabilities, each row from a model fitted without it.

    Stratified folds (fewer when a class is rarer than `folds`); dense features are
    standardised first. A fold that misses a class gives that class probability 0.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels, dtype=int)
    counts = np.bincount(y, minlength=n_classes)
    splits = int(min(folds, max(2, counts[counts > 0].min())))
    proba = np.zeros((len(y), n_classes), dtype=np.float64)
    for train_idx, test_idx in StratifiedKFold(splits, shuffle=True,
                                               random_state=seed).split(np.zeros(len(y)), y):
        classes = np.unique(y[train_idx])
        if len(classes) < 2:  # nothing to contrast: the fold's one class everywhere
            proba[np.ix_(test_idx, classes)] = 1.0
            continue
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        if not sparse.issparse(features):
            model = make_pipeline(StandardScaler(), model)
        model.fit(features[train_idx], y[train_idx])
        proba[np.ix_(test_idx, classes)] = model.predict_proba(features[test_idx])
    return proba


def text_features(texts: Sequence[str]):
    """TF-IDF of character n-grams inside word boundaries (1-3), as the baseline reads texts:
    English and Chinese alike (trainer.baseline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3),
                           sublinear_tf=True).fit_transform(list(texts))


def judged_out_of_fold(embeddings: np.ndarray, texts: Sequence[str], labels: Sequence[int], *,
                       n_classes: int, seed: int = 0) -> np.ndarray:
    """The mean of the out-of-fold probabilities over the embeddings and over the texts."""
    return (out_of_fold_probabilities(embeddings, labels, n_classes=n_classes, seed=seed)
            + out_of_fold_probabilities(text_features(texts), labels, n_classes=n_classes,
                                        seed=seed)) / 2


def find_label_issues(labels: Sequence[int], proba: np.ndarray) -> list[LabelIssue]:
    """The labels confident learning finds wrong, most suspicious first.

    `proba` must be out-of-fold (out_of_fold_probabilities). Empty when there are fewer
    than two classes among the labels.
    """
    from cleanlab.filter import find_label_issues as cleanlab_issues

    y = np.asarray(labels, dtype=int)
    if len(np.unique(y)) < 2:
        return []
    proba = _with_floor(proba)
    # n_jobs=1: cleanlab's default opens a multiprocessing.Pool, which a Celery prefork child
    # (a daemonic process) may not do: "daemonic processes are not allowed to have children"
    indices = cleanlab_issues(y, proba, filter_by="prune_by_noise_rate",
                              return_indices_ranked_by="self_confidence", n_jobs=1)
    return [_issue(int(i), y, proba) for i in indices]


def rank_by_self_confidence(labels: Sequence[int], proba: np.ndarray) -> list[LabelIssue]:
    """Every label, least likely under the out-of-fold model first (top-k without a cut)."""
    y = np.asarray(labels, dtype=int)
    self_confidence = proba[np.arange(len(y)), y]
    return [_issue(int(i), y, proba) for i in np.argsort(self_confidence, kind="stable")]


def _issue(index: int, y: np.ndarray, proba: np.ndarray) -> LabelIssue:
    row = proba[index]
    suggested = int(row.argmax())
    return LabelIssue(index=index, given=int(y[index]), suggested=suggested,
                      self_confidence=float(row[y[index]]),
                      suggested_probability=float(row[suggested]))


def _with_floor(proba: np.ndarray) -> np.ndarray:
    """cleanlab wants rows that sum to 1 with no class never predicted: a tiny floor."""
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-6, None)
    return proba / proba.sum(axis=1, keepdims=True)
