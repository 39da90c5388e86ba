"""The product's query strategies in one registry: for each name a project can choose, its
label (annotator.models.Strategy's choices), the trainer.strategies.query strategy a
fine-tuned version ranks by, and the trainer.strategies.head_query strategy the fast loop's
embedding head ranks by.

No imports: the Django model reads its choices from here.
"""

from typing import NamedTuple


class ProductStrategy(NamedTuple):
    name: str  # stored on the project
    label: str  # shown to people
    pool: str  # a trainer.strategies.STRATEGIES name: what a fine-tuned version ranks by
    head: str  # a trainer.strategies.HEAD_STRATEGIES name: what the fast loop ranks by


# Fine-tuned versions score with query(), which has no per-class ties and no embedding
# diversity: the fast loop's own strategies rank by margin there.
PRODUCT_STRATEGIES = (
    ProductStrategy("random", "Random", pool="random", head="random"),
    ProductStrategy("least_confidence", "Least confidence", pool="least_confidence",
                    head="least_confidence"),
    ProductStrategy("margin", "Margin (breaking ties)", pool="margin", head="breaking_ties"),
    ProductStrategy("balanced_ties", "Margin, an equal share per predicted class",
                    pool="margin", head="balanced_ties"),
    ProductStrategy("entropy", "Entropy", pool="entropy", head="entropy"),
    ProductStrategy("embedding_kmeans", "Diversity: k-means over embeddings", pool="margin",
                    head="embedding_kmeans"),
    ProductStrategy("greedy_coreset", "Diversity: greedy coreset", pool="margin",
                    head="greedy_coreset"),
    ProductStrategy("contrastive", "Contrastive (CAL)", pool="margin", head="contrastive"),
)
BY_NAME = {strategy.name: strategy for strategy in PRODUCT_STRATEGIES}

STRATEGY_CHOICES: list[tuple[str, str]] = [(s.name, s.label) for s in PRODUCT_STRATEGIES]
# for a name the registry lacks
FALLBACK_POOL_STRATEGY, FALLBACK_HEAD_STRATEGY = "margin", "breaking_ties"

# The fast loop's cold start, before two heads agree (HeadFit.strategy): k-means over the
# embeddings, or with an e5 encoder the zero-shot scorer's confident picks; once trusted, a
# queue ranked by the head blended with that scorer is "<head strategy>+zero_shot"
# (trainer.zero_shot; the simulation's "zero_shot+bal+st").
COLD_START_KMEANS = "embedding_kmeans"
COLD_START_ZERO_SHOT = "zero_shot"
BLENDED_SUFFIX = "+" + COLD_START_ZERO_SHOT
# a trusted head's queue with Project.class_sample_share of class samples: "<strategy>+class_sample"
CLASS_SAMPLE_SUFFIX = "+class_sample"


def pool_strategy_for(name: str) -> str:
    """The query() strategy a fine-tuned version ranks by for the product strategy `name`."""
    strategy = BY_NAME.get(name)
    return strategy.pool if strategy else FALLBACK_POOL_STRATEGY


def head_strategy_for(name: str) -> str:
    """The head_query() strategy the fast loop ranks by for the product strategy `name`."""
    strategy = BY_NAME.get(name)
    return strategy.head if strategy else FALLBACK_HEAD_STRATEGY
