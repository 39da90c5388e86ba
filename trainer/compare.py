"""Is a new version worse than the active one? A paired bootstrap of macro-F1 on the same items.

Both versions predicted the same items (gold, or validation items neither trained on). The
items are resampled with replacement, the same draw for both versions, and each draw gives a
difference of macro-F1 (new - old). The new version is **worse beyond noise** when even the
95th percentile of those differences is below `-TOLERANCE`: with 95% confidence (one-sided) it
loses more than a hundredth of macro-F1. Fewer than `MIN_ITEMS` items decide nothing.

Why this rule: pairing cancels the items both get right or wrong alike, so only the items on
which they disagree move the difference (two retrains on nearly the same labels disagree on few
items, and an unpaired comparison of two F1s would call almost anything noise). One-sided,
because only a loss blocks; the tolerance, so that a huge gold set does not refuse a version
for a loss nobody would notice. The seed is fixed: the same predictions give the same answer.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from trainer.evaluate import MIN_RELIABLE_GOLD

MIN_ITEMS = MIN_RELIABLE_GOLD  # below it a macro-F1 moves by several points per item
RESAMPLES = 2000
CONFIDENCE = 0.95
TOLERANCE = 0.01  # macro-F1: a smaller loss never blocks a version
SEED = 0
_CHUNK = 200  # resamples per vectorised block: bounds memory at 200 x n indices


@dataclass(frozen=True)
class Comparison:
    n: int  # items both versions predicted
    new_macro_f1: float
    old_macro_f1: float
    difference: float  # new - old, on the items as they are
    upper_bound: float  # CONFIDENCE one-sided upper bound of the difference (bootstrap)
    worse: bool  # upper_bound < -TOLERANCE: refuse the new version

    def to_dict(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


def macro_f1_of_draws(y_true: np.ndarray, y_pred: np.ndarray, draws: np.ndarray,
                      num_labels: int) -> np.ndarray:
    """Macro-F1 of each draw (a row of item indices), as trainer.evaluate computes it: the
    mean F1 over the classes present in that draw's truth, F1 0 where undefined."""
    k = num_labels
    cells = (y_true * k + y_pred)[draws]  # (draws, n): confusion cell of each drawn item
    offsets = (np.arange(len(draws)) * k * k)[:, None]
    confusion = np.bincount((cells + offsets).ravel(), minlength=len(draws) * k * k)
    confusion = confusion.reshape(len(draws), k, k)  # rows: truth
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    denominator = support + predicted  # 2tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    present = support > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def compare_predictions(
    y_true: Sequence[int], new_pred: Sequence[int], old_pred: Sequence[int], num_labels: int,
    *, resamples: int = RESAMPLES, seed: int = SEED, tolerance: float = TOLERANCE,
) -> Comparison:
    """Paired bootstrap of macro-F1 (new - old) over the same items: see the module docstring.

    Label indices in [0, num_labels). Raises ValueError on empty or unequal inputs.
    """
    y_true, new_pred, old_pred = (np.asarray(a, dtype=np.int64)
                                  for a in (y_true, new_pred, old_pred))
    n = len(y_true)
    if n == 0 or len(new_pred) != n or len(old_pred) != n:
        raise ValueError("need the same, non-empty items for both versions")
    whole = np.arange(n)[None, :]
    new_f1 = float(macro_f1_of_draws(y_true, new_pred, whole, num_labels)[0])
    old_f1 = float(macro_f1_of_draws(y_true, old_pred, whole, num_labels)[0])
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, resamples, _CHUNK):
        draws = rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))
        differences.append(macro_f1_of_draws(y_true, new_pred, draws, num_labels)
                           - macro_f1_of_draws(y_true, old_pred, draws, num_labels))
    upper = float(np.quantile(np.concatenate(differences), CONFIDENCE))
    return Comparison(n=n, new_macro_f1=new_f1, old_macro_f1=old_f1,
                      difference=new_f1 - old_f1, upper_bound=upper, worse=upper < -tolerance)
