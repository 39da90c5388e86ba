import pytest

from trainer.evaluate import classification_metrics


def test_metrics_per_class_macro_and_confusion_matrix():
    names = ["negative", "neutral", "positive"]
    m = classification_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], names)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["per_class"]["negative"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    f1s = [m["per_class"][n]["f1"] for n in names]
    assert m["macro_f1"] == pytest.approx(sum(f1s) / 3)
    assert m["support"] == 6


def test_macro_f1_ignores_classes_absent_from_the_truth():
    m = classification_metrics([0, 0], [0, 0], ["negative", "neutral", "positive"])
    assert m["macro_f1"] == 1.0
    assert m["per_class"]["neutral"]["support"] == 0


def test_empty_evaluation_gives_zeroes():
    assert classification_metrics([], [], ["a", "b"])["macro_f1"] == 0.0
