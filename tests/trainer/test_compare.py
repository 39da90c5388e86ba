"""The paired bootstrap that decides whether a new version may replace the active one."""

import numpy as np
import pytest

from trainer.compare import compare_predictions, macro_f1_of_draws
from trainer.evaluate import classification_metrics

NAMES = ["negative", "neutral", "positive"]


def _truth(n: int = 100) -> np.ndarray:
    return np.arange(n) % 3


def _flip(pred: np.ndarray, items) -> np.ndarray:
    """The same predictions, wrong (shifted by one class) on `items`."""
    out = pred.copy()
    out[list(items)] = (out[list(items)] + 1) % 3
    return out


def test_macro_f1_of_the_whole_sample_is_the_one_classification_metrics_reports():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 3, 57), rng.integers(0, 3, 57)
    y_true[:3] = 1  # and a class missing from the predictions
    y_pred[y_pred == 1] = 0
    ours = macro_f1_of_draws(y_true, y_pred, np.arange(57)[None, :], 3)[0]
    assert ours == pytest.approx(classification_metrics(y_true, y_pred, NAMES)["macro_f1"])


def test_macro_f1_of_a_draw_counts_only_the_classes_present_in_its_truth():
    y_true, y_pred = np.array([0, 1, 2]), np.array([0, 2, 2])
    draws = np.array([[0, 0, 0], [1, 2, 2]])
    assert macro_f1_of_draws(y_true, y_pred, draws, 3).tolist() == pytest.approx(
        [1.0, (0.0 + 0.8) / 2])


def test_identical_predictions_are_never_worse():
    truth = _truth()
    result = compare_predictions(truth, _flip(truth, range(0, 40)), _flip(truth, range(0, 40)), 3)
    assert result.difference == 0 and result.upper_bound == 0 and not result.worse


def test_a_collapsed_model_is_worse_beyond_noise():
    truth = _truth()
    old = _flip(truth, range(0, 100, 5))  # 80% right
    new = np.zeros(100, dtype=int)  # says "negative" to everything
    result = compare_predictions(truth, new, old, 3)
    assert result.worse and result.n == 100
    assert result.new_macro_f1 < 0.25 < 0.75 < result.old_macro_f1
    assert result.difference < result.upper_bound < -0.3


def test_a_loss_of_two_items_in_a_hundred_is_noise():
    truth = _truth()
    old = _flip(truth, range(0, 100, 10))
    new = _flip(old, [1, 2])  # two more mistakes
    result = compare_predictions(truth, new, old, 3)
    assert result.difference < 0 and not result.worse


def test_gains_and_losses_that_nearly_cancel_are_noise():
    truth = _truth()
    old = _flip(truth, range(0, 30))
    new = _flip(truth, range(4, 38))  # right on 4 items, wrong on 8 others
    result = compare_predictions(truth, new, old, 3)
    assert result.difference < 0 and not result.worse


def test_a_consistent_loss_of_a_tenth_of_the_items_is_worse():
    truth = _truth()
    old = _flip(truth, range(0, 10))
    new = _flip(truth, range(0, 20))  # the same mistakes and ten more
    assert compare_predictions(truth, new, old, 3).worse


def test_a_better_version_is_not_worse():
    truth = _truth()
    result = compare_predictions(truth, truth, _flip(truth, range(0, 50)), 3)
    assert result.difference > 0.4 and not result.worse


def test_a_small_but_certain_loss_within_the_tolerance_does_not_block():
    truth = np.arange(30_000) % 3
    old = truth.copy()
    new = _flip(truth, range(0, 30_000, 200))  # 0.5% wrong, every time
    certain = compare_predictions(truth, new, old, 3, resamples=200)
    assert certain.upper_bound < 0 and not certain.worse
    assert compare_predictions(truth, new, old, 3, resamples=200, tolerance=0.0).worse


def test_the_same_inputs_give_the_same_answer():
    rng = np.random.default_rng(1)
    truth, new, old = (rng.integers(0, 3, 60) for _ in range(3))
    assert compare_predictions(truth, new, old, 3) == compare_predictions(truth, new, old, 3)


def test_empty_or_unequal_inputs_are_refused():
    with pytest.raises(ValueError):
        compare_predictions([], [], [], 3)
    with pytest.raises(ValueError):
        compare_predictions([0, 1], [0], [0, 1], 3)
