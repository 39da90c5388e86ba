import numpy as np
import pytest

from trainer.strategies import (
    CLASS_SAMPLE,
    RANDOM_CONTROL,
    UNCERTAINTY,
    EmptyPoolError,
    Pick,
    class_sample_share,
    class_samples,
    classes_uneven,
    entropy,
    least_confidence,
    margin,
    query,
    select_diverse,
    select_seed,
    select_top,
    stopping_signal,
    uncertainty,
    with_class_samples,
)

# rows: confident, two-way tie, three-way tie, leaning
PROBA = np.array([
    [0.90, 0.05, 0.05],
    [0.45, 0.45, 0.10],
    [1 / 3, 1 / 3, 1 / 3],
    [0.60, 0.30, 0.10],
])


class _Fixed:
    """A 'classifier' that answers with fixed probabilities (for modAL / small-text)."""

    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, _x):
        return self.proba


def test_least_confidence_ranks_the_flattest_row_first():
    assert select_top(least_confidence(PROBA), 4).tolist() == [2, 1, 3, 0]


def test_margin_ranks_the_two_way_tie_with_the_three_way_tie():
    scores = margin(PROBA)
    assert scores[1] == pytest.approx(1.0) and scores[2] == pytest.approx(1.0)
    assert select_top(scores, 4).tolist() == [1, 2, 3, 0]  # equal scores keep index order


def test_entropy_is_largest_for_the_uniform_row_and_handles_zeros():
    scores = entropy(np.vstack([PROBA, [1.0, 0.0, 0.0]]))
    assert scores[2] == pytest.approx(np.log(3))
    assert scores[4] == 0.0
    assert select_top(scores, 5).tolist() == [2, 1, 3, 0, 4]


def test_scores_agree_with_modal():
    from modAL.uncertainty import classifier_entropy, classifier_margin, classifier_uncertainty

    clf = _Fixed(PROBA)
    np.testing.assert_allclose(least_confidence(PROBA), classifier_uncertainty(clf, None))
    np.testing.assert_allclose(margin(PROBA), 1 - classifier_margin(clf, None))
    np.testing.assert_allclose(entropy(PROBA), classifier_entropy(clf, None))


def test_scores_agree_with_small_text_confidences():
    from small_text.query_strategies import BreakingTies, LeastConfidence, PredictionEntropy

    clf = _Fixed(PROBA)
    lc = LeastConfidence().get_confidence(clf, None, None, None, None)
    bt = BreakingTies().get_confidence(clf, None, None, None, None)
    pe = PredictionEntropy().get_confidence(clf, None, None, None, None)
    np.testing.assert_allclose(least_confidence(PROBA), 1 - lc)
    np.testing.assert_allclose(margin(PROBA), 1 - bt)
    np.testing.assert_allclose(entropy(PROBA), pe)


def test_an_empty_pool_raises_a_named_error():
    with pytest.raises(EmptyPoolError):
        select_top(np.array([]), 3)
    with pytest.raises(EmptyPoolError):
        query("margin", np.zeros((0, 3)), 5)


def test_asking_for_more_than_the_pool_returns_the_whole_pool():
    assert sorted(select_top(margin(PROBA), 10).tolist()) == [0, 1, 2, 3]


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError):
        uncertainty("vibes", PROBA)


def _blobs(n_clusters=4, per=25, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(n_clusters, 8) * 20
    emb = np.vstack([c + rng.normal(size=(per, 8)) for c in centers])
    cluster = np.repeat(np.arange(n_clusters), per)
    return emb, cluster


def test_diverse_batch_takes_one_item_from_each_cluster():
    emb, cluster = _blobs()
    scores = np.linspace(0, 1, len(emb))  # the last cluster holds all the top plain scores
    plain = select_top(scores, 4)
    assert len(set(cluster[plain])) == 1
    picks = select_diverse(scores, emb, 4, candidates_per_pick=25)
    assert sorted(cluster[picks].tolist()) == [0, 1, 2, 3]
    # inside its cluster each pick is the most uncertain member
    for i in picks:
        assert scores[i] == scores[cluster == cluster[i]].max()


def test_cold_start_seed_reaches_every_cluster():
    emb, cluster = _blobs(n_clusters=5, per=30, seed=1)
    picks = select_seed(emb, 5, seed=0)
    assert sorted(cluster[picks].tolist()) == [0, 1, 2, 3, 4]


def test_query_mixes_in_the_random_control_share_with_its_reason():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=200)
    picks = query("margin", proba, 20, random_share=0.1, seed=3)
    reasons = [p.reason for p in picks]
    assert reasons.count(RANDOM_CONTROL) == 2 and reasons.count(UNCERTAINTY) == 18
    assert len({p.index for p in picks}) == 20
    assert reasons[0] == UNCERTAINTY and reasons[-1] == UNCERTAINTY  # spread, not at an end
    uncertain = [p.index for p in picks if p.reason == UNCERTAINTY]
    assert uncertain == select_top(margin(proba), 18).tolist()


def test_query_random_ignores_the_scores():
    picks = query("random", PROBA, 2, seed=0)
    assert len(picks) == 2 and all(p.reason == "random" for p in picks)


def test_stopping_signal_stops_when_predictions_stabilize():
    a = np.array([0, 1, 2, 1, 0, 2, 1, 0])
    b = np.array([0, 1, 2, 2, 0, 2, 1, 1])
    moving = stopping_signal([a, b, a, b], num_classes=3)
    assert not moving.stop and "changing" in moving.reason
    stable = stopping_signal([b, a, a, a, a], num_classes=3)
    assert stable.stop and "stable" in stable.reason
    assert stable.kappas[-3:] == [1.0, 1.0, 1.0]


def test_stopping_signal_agrees_with_small_text_kappa_average():
    from small_text.stopping_criteria import KappaAverage

    rng = np.random.default_rng(0)
    versions = [rng.integers(0, 3, 50) for _ in range(2)] + [np.zeros(50, int)] * 4
    criterion = KappaAverage(num_classes=3, window_size=3, kappa=0.99)
    for i, preds in enumerate(versions):
        theirs = criterion.stop(predictions=preds)
        ours = stopping_signal(versions[: i + 1], num_classes=3).stop
        assert ours == theirs


def test_stopping_signal_stops_on_low_overall_uncertainty():
    sure = np.tile([0.999, 0.0005, 0.0005], (10, 1))
    signal = stopping_signal([], sure, num_classes=3)
    assert signal.stop and "uncertainty" in signal.reason
    assert not stopping_signal([], PROBA, num_classes=3).stop


def test_class_samples_take_turns_so_a_rare_predicted_class_is_reached():
    rows = np.arange(100, 120)
    predicted = np.array([0] * 17 + [1] * 2 + [2])  # class 2 predicted once
    drawn = class_samples(predicted, rows, 6, seed=0)
    assert [predicted[i - 100] for i in drawn] == [0, 1, 2, 0, 1, 0]
    assert len(set(drawn)) == 6 and set(drawn) <= set(rows.tolist())
    assert drawn == class_samples(predicted, rows, 6, seed=0)  # seeded
    assert len(class_samples(predicted, rows, 50, seed=0)) == 20  # no more than there are


def test_with_class_samples_keeps_the_top_picks_and_spreads_the_samples():
    picks = [Pick(i, UNCERTAINTY, 1.0 - i / 10) for i in range(6)]
    rows = np.arange(20)
    predicted = rows % 2
    mixed = with_class_samples(picks, predicted, rows, 0.5, seed=1)
    assert len(mixed) == 6 and len({p.index for p in mixed}) == 6
    assert [p.reason for p in mixed] == [UNCERTAINTY, CLASS_SAMPLE] * 3  # any top: the share
    assert [p.index for p in mixed if p.reason == UNCERTAINTY] == [0, 1, 2]
    samples = [p.index for p in mixed if p.reason == CLASS_SAMPLE]
    assert not set(samples) & {0, 1, 2} and {predicted[i] for i in samples} == {0, 1}
    assert with_class_samples(picks, predicted, rows, 0.0, seed=1) == picks
    assert with_class_samples(picks[:1], predicted, rows, 0.5, seed=1) == picks[:1]


def test_classes_are_uneven_when_one_is_predicted_under_half_an_even_share():
    assert classes_uneven(np.array([0] * 77 + [1] * 12 + [2] * 11), 3)  # a shop's reviews
    assert not classes_uneven(np.array([0] * 52 + [1] * 48), 2)  # a balanced binary set
    assert classes_uneven(np.array([0] * 10), 2)  # a class never predicted
    assert not classes_uneven(np.array([0] * 26 + [1] * 74), 2)  # 26% of 2 classes: even enough
    assert classes_uneven(np.array([0] * 24 + [1] * 76), 2)
    assert not classes_uneven(np.array([], dtype=int), 3)


def test_even_classes_get_half_the_class_sample_share():
    assert class_sample_share(np.array([0] * 77 + [1] * 12 + [2] * 11), 3, 0.5) == 0.5
    assert class_sample_share(np.array([0] * 52 + [1] * 48), 2, 0.5) == 0.25
    assert class_sample_share(np.array([0] * 52 + [1] * 48), 2, 0.0) == 0.0
