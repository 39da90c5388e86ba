"""The project agreement report (the math: tests/trainer/test_agreement.py)."""

import pytest
from django.contrib.auth import get_user_model

from annotator.selectors.agreement import project_agreement
from tests.annotator.labeling_factories import label_as, make_item
from trainer.agreement import cohen_kappa


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
