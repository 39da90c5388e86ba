"""Label agreement math: majority vote, Cohen's kappa, Krippendorff's alpha (nominal).

Pure functions on labels, no Django: the platform's agreement report
(annotator.selectors_agreement), its training labels, export and insight (majority vote),
and the stopping and fast-loop trust signals (trainer.strategies, kappa of consecutive
versions) all count with these. Own code rather than sklearn's cohen_kappa_score: that one
returns nan with a warning where kappa is undefined, and the web process that draws the
agreement page need not import scikit-learn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence


def majority_label(labels: Iterable[str]) -> str | None:
    """The strict majority of `labels` (a list of votes or a Counter); None on a tie or none."""
    ranked = Counter(labels).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def consensus(final_label: str, labels: Iterable[str]) -> str:
    """An item's label: the adjudicated one, else the strict majority of its annotations
    ("" on a tie or with none)."""
    return final_label or majority_label(labels) or ""


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters from (label_a, label_b) pairs; None when undefined."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    count_a = Counter(a for a, _ in pairs)
    count_b = Counter(b for _, b in pairs)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha_nominal(units: Iterable[Sequence[str]]) -> float | None:
    """Krippendorff's alpha for nominal data; each unit is the labels it got.

    Units with fewer than two labels carry no information and are ignored, so
    any number of raters per unit (and missing ratings) is fine. None when
    undefined (fewer than two pairable values, or only one label ever used).
    """
    coincidences: Counter = Counter()
    for unit in units:
        m = len(unit)
        if m < 2:
            continue
        counts = Counter(unit)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                coincidences[(c, k)] += pairs / (m - 1)
    totals: Counter = Counter()
    for (c, _k), value in coincidences.items():
        totals[c] += value
    n = sum(totals.values())
    if n < 2:
        return None
    disagree_observed = sum(v for (c, k), v in coincidences.items() if c != k)
    disagree_expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if disagree_expected == 0:
        return None
    return 1 - (n - 1) * disagree_observed / disagree_expected
