"""Agreement math against published examples, and the project report."""

import pytest
from django.contrib.auth import get_user_model

from annotator.services.agreement import (
    cohen_kappa,
    krippendorff_alpha_nominal,
    project_agreement,
)
from tests.annotator.labeling_factories import label_as, make_item


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


@pytest.mark.django_db
def test_project_agreement_reports_pairs_confusion_and_disagreements(project, labeler, admin_user):
    other = get_user_model().objects.create_user("olga")
    project.members.add(other)
    rows = [("positive", "positive"), ("negative", "negative"), ("positive", "neutral")]
    items = []
    for i, (a, b) in enumerate(rows):
        item = make_item(project, f"text {i}", required_labels=2)
        label_as(labeler, item, a)
        label_as(other, item, b)
        items.append(item)
    make_item(project, "single")  # one label only: not part of agreement
    report = project_agreement(project)

    assert report["items"] == 3 and report["labelers"] == 2
    assert report["alpha"] is not None and report["alpha"] < 1
    (pair,) = report["pairs"]
    assert {pair["a"], pair["b"]} == {"lena", "olga"}
    assert pair["items"] == 3 and pair["agreement"] == pytest.approx(2 / 3)
    assert pair["kappa"] == pytest.approx(
        cohen_kappa(rows if pair["a"] == "lena" else [(b, a) for a, b in rows])
    )
    matrix = dict(pair["matrix"])
    assert sum(sum(counts) for counts in matrix.values()) == 3
    assert [d["item"].pk for d in report["disagreements"]] == [items[2].pk]
    assert report["disagreements"][0]["votes"] == [("lena", "positive"), ("olga", "neutral")]
