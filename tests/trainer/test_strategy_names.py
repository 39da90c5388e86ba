"""The one registry of the product's strategy names (trainer.strategy_names)."""

from trainer.strategies import HEAD_STRATEGIES, STRATEGIES
from trainer.strategy_names import (
    PRODUCT_STRATEGIES,
    STRATEGY_CHOICES,
    head_strategy_for,
    pool_strategy_for,
)

# annotator.models.Strategy as it was when the registry took its place: a changed value or
# label is a Django migration, so it changes here on purpose or not at all.
CHOICES = [
    ("random", "Random"),
    ("least_confidence", "Least confidence"),
    ("margin", "Margin (breaking ties)"),
    ("balanced_ties", "Margin, an equal share per predicted class"),
    ("entropy", "Entropy"),
    ("embedding_kmeans", "Diversity: k-means over embeddings"),
    ("greedy_coreset", "Diversity: greedy coreset"),
    ("contrastive", "Contrastive (CAL)"),
]
# the fast loop's map (annotator/services/fast_loop.py HEAD_STRATEGY) as it was
HEAD = {"random": "random", "least_confidence": "least_confidence",
        "margin": "breaking_ties", "balanced_ties": "balanced_ties", "entropy": "entropy",
        "embedding_kmeans": "embedding_kmeans", "greedy_coreset": "greedy_coreset",
        "contrastive": "contrastive"}


def test_the_choices_are_the_models_values_and_labels_in_order():
    assert STRATEGY_CHOICES == CHOICES


def test_every_product_strategy_names_an_engine_strategy_that_exists():
    for strategy in PRODUCT_STRATEGIES:
        assert strategy.pool in STRATEGIES, strategy
        assert strategy.head in HEAD_STRATEGIES and strategy.head != "auto", strategy


def test_the_fast_loop_ranks_as_it_did():
    assert {name: head_strategy_for(name) for name, _ in CHOICES} == HEAD
    assert head_strategy_for("no_such_strategy") == "breaking_ties"


def test_a_fine_tuned_version_ranks_by_its_own_strategy_or_by_margin():
    """As annotator's version_strategy did: the name where query() has it, else margin."""
    for name, _ in CHOICES:
        assert pool_strategy_for(name) == (name if name in STRATEGIES else "margin")
    assert pool_strategy_for("no_such_strategy") == "margin"
