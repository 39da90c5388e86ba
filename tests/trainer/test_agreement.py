"""Agreement math against published examples: kappa, alpha, majority vote."""

import pytest

from trainer.agreement import cohen_kappa, consensus, krippendorff_alpha_nominal, majority_label


def test_cohen_kappa_matches_the_textbook_example():
    # 50 items: both yes 20, yes/no 5, no/yes 10, both no 15 -> kappa 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_is_one_for_perfect_agreement_and_none_when_undefined():
    assert cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    assert cohen_kappa([("a", "a"), ("a", "a")]) is None
    assert cohen_kappa([]) is None


def test_cohen_kappa_is_negative_for_systematic_disagreement():
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)


def test_krippendorff_alpha_matches_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders,
    # 12 units with missing values; nominal alpha = 0.743.
    coders = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    units = [
        [v for v in column if v != "."] for column in zip(*(c.split() for c in coders), strict=True)
    ]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_edge_cases():
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]) is None  # one label only
    assert krippendorff_alpha_nominal([["a"], ["b"]]) is None  # nothing pairable


def test_majority_label_needs_a_strict_majority():
    assert majority_label(["a", "b", "a"]) == "a"
    assert majority_label(["a", "b"]) is None
    assert majority_label([]) is None


def test_consensus_prefers_the_adjudicated_label():
    assert consensus("c", ["a", "a"]) == "c"
    assert consensus("", ["a", "b"]) == ""
