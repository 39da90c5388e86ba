"""Query strategies as plain functions over probability arrays (modAL style).

Scoring is separate from selection: an uncertainty function maps probabilities
(n_items x n_classes) to one score per item, HIGHER = MORE UNCERTAIN = ask sooner;
selection functions turn scores (and optionally embeddings) into item indices.
`query()` puts them together for one batch, with a random control share.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("random", "least_confidence", "margin", "entropy")
DEFAULT_STRATEGY = "margin"
# Reasons recorded with every pick (Item.queue_reason / Annotation.picked_by).
UNCERTAINTY, RANDOM_CONTROL, SEED, RANDOM = "uncertainty", "random_control", "seed", "random"
CLASS_SAMPLE = "class_sample"  # drawn at random within one predicted class (with_class_samples)


class EmptyPoolError(ValueError):
    """Asked to select from a pool with no unlabeled items."""


# --- scores -------------------------------------------------------------------------------

def least_confidence(proba: np.ndarray) -> np.ndarray:
    """1 - p(most likely class) (modAL classifier_uncertainty, small-text LeastConfidence)."""
    return 1.0 - np.asarray(proba, dtype=float).max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """1 - (p1 - p2): a small gap between the two most likely classes is uncertain.

    Breaking ties (small-text BreakingTies); modAL's classifier_margin is p1 - p2.
    """
    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    top2 = np.sort(proba, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats, 0 log 0 = 0 (modAL classifier_entropy, small-text
    PredictionEntropy)."""
    proba = np.asarray(proba, dtype=float)
    logs = np.log(proba, out=np.zeros_like(proba), where=proba > 0)
    return -(proba * logs).sum(axis=1)


SCORERS = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}


def uncertainty(strategy: str, proba: np.ndarray) -> np.ndarray:
    """Scores of `strategy` (random scores nothing: zeros); unknown names raise ValueError."""
    base = strategy.removesuffix("_diverse")
    if base == "random":
        return np.zeros(len(proba))
    if base not in SCORERS:
        raise ValueError(f"unknown strategy {strategy!r}")
    return SCORERS[base](proba)


# --- selection ----------------------------------------------------------------------------

def _check(n_pool: int, n: int) -> int:
    if n_pool == 0:
        raise EmptyPoolError("the pool has no unlabeled items to select from")
    if n < 0:
        raise ValueError("n must be >= 0")
    return min(n, n_pool)


def select_top(scores: Sequence[float], n: int) -> np.ndarray:
    """Indices of the n highest scores, highest first; equal scores keep index order."""
    scores = np.asarray(scores, dtype=float)
    n = _check(len(scores), n)
    return np.argsort(-scores, kind="stable")[:n]


def select_random(n_pool: int, n: int, rng: np.random.Generator) -> np.ndarray:
    n = _check(n_pool, n)
    return rng.choice(n_pool, size=n, replace=False)


def _kmeans(embeddings: np.ndarray, k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(embeddings)


def select_diverse(scores: Sequence[float], embeddings: np.ndarray, n: int, *,
                   candidates_per_pick: int = 10, seed: int = 0) -> np.ndarray:
    """Uncertain AND spread out: k-means (k = n) over the embeddings of the top n x
    candidates_per_pick uncertain items; the most uncertain item of each cluster.

    Picks come most uncertain first. Clusters that end up empty are filled from the
    remaining top candidates, so exactly n indices come back.
    """
    scores = np.asarray(scores, dtype=float)
    n = _check(len(scores), n)
    top = select_top(scores, n * candidates_per_pick)
    if n <= 1 or len(top) <= n:
        return top[:n]
    clusters = _kmeans(np.asarray(embeddings, dtype=np.float32)[top], n, seed).labels_
    picks = []
    for cluster in np.unique(clusters):
        members = top[clusters == cluster]  # already most uncertain first
        picks.append(members[0])
    chosen = set(picks)
    picks += [i for i in top if i not in chosen][: n - len(picks)]
    return np.asarray(sorted(picks, key=lambda i: -scores[i]))


def select_seed(embeddings: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """Cold start without a model: k-means (k = n), the item nearest each centroid.

    Spread over the embedding space, the seed set reaches rare classes sooner than a
    random draw of the same size.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    n = _check(len(embeddings), n)
    if n == len(embeddings):
        return np.arange(n)
    km = _kmeans(embeddings, n, seed)
    dist = km.transform(embeddings)  # items x centroids
    picks: list[int] = []
    taken = np.zeros(len(embeddings), dtype=bool)
    for c in range(n):
        order = np.argsort(dist[:, c], kind="stable")
        picks.append(int(next(i for i in order if not taken[i])))
        taken[picks[-1]] = True
    return np.asarray(picks)


# --- one batch ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Pick:
    index: int  # into the candidate arrays
    reason: str  # uncertainty / random_control / random / seed
    score: float  # uncertainty score (0 for random picks)


def control_count(n: int, random_share: float) -> int:
    """How many of a batch of n are the random control (none in a batch of one)."""
    return int(round(n * random_share)) if n > 1 else 0


def insert_random_control(picks: list[Pick], rest: np.ndarray, n: int, n_control: int,
                          rng: np.random.Generator, score: Callable[[int], float]) -> list[Pick]:
    """picks plus n_control items drawn at random from `rest` (an unbiased control), spread
    evenly through the batch of n so each labeler meets some; score(i): item i's score."""
    if not n_control or not len(rest):
        return picks
    control = rng.choice(rest, size=min(n_control, len(rest)), replace=False)
    slots = np.linspace(0, n - 1, num=len(control) + 2)[1:-1].round().astype(int)
    for slot, i in zip(slots, control, strict=True):
        picks.insert(int(slot), Pick(int(i), RANDOM_CONTROL, score(int(i))))
    return picks


def query(strategy: str, proba: np.ndarray, n: int, *, random_share: float = 0.1,
          embeddings: np.ndarray | None = None, diverse: bool = False,
          seed: int = 0) -> list[Pick]:
    """The next n items to label, in the order to ask them.

    `strategy` is one of STRATEGIES ("<name>_diverse" turns on `diverse`). A share of
    random_share picks is drawn at random from the rest as an unbiased control and
    spread evenly through the batch, so each labeler meets some. Diversity needs
    `embeddings` (one row per candidate).
    """
    proba = np.asarray(proba, dtype=float)
    n = _check(len(proba), n)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return [Pick(int(i), RANDOM, 0.0) for i in select_random(len(proba), n, rng)]
    diverse = diverse or strategy.endswith("_diverse")
    scores = uncertainty(strategy, proba)
    n_control = control_count(n, random_share)
    n_uncertain = n - n_control
    if diverse and embeddings is not None and n_uncertain > 1:
        chosen = select_diverse(scores, embeddings, n_uncertain, seed=seed)
    else:
        chosen = select_top(scores, n_uncertain)
    picks = [Pick(int(i), UNCERTAINTY, float(scores[i])) for i in chosen]
    rest = np.setdiff1d(np.arange(len(proba)), chosen)
    return insert_random_control(picks, rest, n, n_control, rng, lambda i: float(scores[i]))


# --- stopping -----------------------------------------------------------------------------

@dataclass(frozen=True)
class StopSignal:
    stop: bool
    reason: str
    kappas: list[float]  # agreement of consecutive versions on the fixed stopping sample
    mean_uncertainty: float | None  # normalized entropy on the newest version, 0..1


def _kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
    """Cohen's kappa of two versions' predicted classes (trainer.agreement.cohen_kappa)."""
    from trainer.agreement import cohen_kappa

    if np.array_equal(a, b):
        return 1.0  # kappa is undefined on perfect agreement with one class
    return float(cohen_kappa(list(zip(a.tolist(), b.tolist(), strict=True))))


def stopping_signal(predictions: Sequence[np.ndarray], proba: np.ndarray | None = None, *,
                    num_classes: int, window: int = 3, kappa: float = 0.99,
                    uncertainty_threshold: float = 0.05) -> StopSignal:
    """Whether more labels are likely to stop paying off, and why.

    predictions: predicted class indices of consecutive model versions (oldest first) on
    one fixed stopping sample. Stabilizing predictions (small-text KappaAverage): stop when
    the mean Cohen's kappa of the last `window` consecutive pairs is >= kappa. Overall
    uncertainty (small-text OverallUncertainty): stop when the mean normalized entropy of
    the newest version's probabilities is below uncertainty_threshold.
    """
    preds = [np.asarray(p) for p in predictions]
    kappas = [_kappa(a, b, num_classes) for a, b in zip(preds, preds[1:], strict=False)]
    mean_unc = None
    if proba is not None and len(proba) and num_classes > 1:
        mean_unc = float(np.mean(entropy(proba) / np.log(num_classes)))
    if len(kappas) >= window and np.mean(kappas[-window:]) >= kappa:
        return StopSignal(True, f"predictions stable: mean kappa {np.mean(kappas[-window:]):.3f}"
                          f" >= {kappa} over the last {window} versions", kappas, mean_unc)
    if mean_unc is not None and mean_unc < uncertainty_threshold:
        return StopSignal(True, f"overall uncertainty {mean_unc:.3f} < {uncertainty_threshold}",
                          kappas, mean_unc)
    if len(kappas) < window:
        why = f"need {window + 1} versions to judge stability, have {len(preds)}"
    else:
        why = f"predictions still changing: mean kappa {np.mean(kappas[-window:]):.3f} < {kappa}"
    return StopSignal(False, why, kappas, mean_unc)


# --- the fast loop: small-text strategies on the embedding head ----------------------------

HEAD_STRATEGIES = ("random", "breaking_ties", "balanced_ties", "least_confidence", "entropy",
                   "embedding_kmeans", "greedy_coreset", "contrastive", "auto")
DIVERSITY = "diversity"  # reason of a pick made by an embedding-diversity strategy


def _small_text(name: str):
    import warnings

    from small_text import (
        BreakingTies,
        ContrastiveActiveLearning,
        EmbeddingKMeans,
        GreedyCoreset,
        LeastConfidence,
        PredictionEntropy,
    )

    class VectorizedBreakingTies(BreakingTies):
        """small-text's BreakingTies, its score computed for all rows at once: the library
        calls np.apply_along_axis (a Python call per item: ~1 s at 100k items)."""

        def get_confidence(self, clf, dataset, _indices_unlabeled, _indices_labeled, _y):
            top2 = np.sort(clf.predict_proba(dataset), axis=1)[:, -2:]
            return top2[:, 1] - top2[:, 0]

    class BalancedBreakingTies(VectorizedBreakingTies):
        """Breaking ties per predicted class: an equal share of the batch from each class's
        most uncertain items (the rest from the overall top). small-text 1.4 has no class
        balancer (2.0's ClassBalancer); with 77% positive reviews the plain top-n is mostly
        positive-vs-neutral ties, and the rare classes starve."""

        def query(self, clf, dataset, indices_unlabeled, indices_labeled, y, n=10):
            indices_unlabeled = np.asarray(indices_unlabeled)
            subset = dataset[indices_unlabeled]
            proba = clf.predict_proba(subset)
            top2 = np.sort(proba, axis=1)[:, -2:]
            gap, predicted = top2[:, 1] - top2[:, 0], proba.argmax(axis=1)
            classes = np.unique(predicted)
            share = n // max(1, len(classes))
            chosen: list[int] = []
            for c in classes:
                members = np.flatnonzero(predicted == c)
                chosen += members[np.argsort(gap[members], kind="stable")][:share].tolist()
            taken = set(chosen)
            rest = [i for i in np.argsort(gap, kind="stable") if i not in taken]
            chosen += rest[:n - len(chosen)]
            return indices_unlabeled[np.asarray(chosen[:n], dtype=int)]

    with warnings.catch_warnings():  # GreedyCoreset warns its default metric changed in 1.2
        warnings.simplefilter("ignore")
        return {"breaking_ties": VectorizedBreakingTies, "balanced_ties": BalancedBreakingTies,
                "least_confidence": LeastConfidence, "entropy": PredictionEntropy,
                "embedding_kmeans": EmbeddingKMeans,
                "greedy_coreset": lambda: GreedyCoreset(distance_metric="euclidean"),
                "contrastive": lambda: ContrastiveActiveLearning(k=10, pbar=None)}[name]()


class ExactAnchorSubsampling:
    """small-text's AnchorSubsampling (AnchorAL) with an exact, seeded, class-balanced search.

    As the library: per class, k-means++ picks `num_anchors` of its labeled items, each
    anchor reaches its k nearest unlabeled items, and the subpool keeps those most similar
    on average to the anchors that reached them. Three differences, each for a reason:
    - exact neighbours by a matrix product (<= 10 anchors per class against the normalized
      pool, milliseconds): the library keeps an hnswlib index on the strategy object between
      rounds, and the platform re-ranks in a fresh task each time;
    - the anchors' k-means++ takes `seed` (the library draws from a fresh, unseeded
      RandomState, so the same seed gave different picks);
    - the cut keeps an equal share of each class's neighbourhood before filling by overall
      similarity: AnchorAL's aim is a class-balanced subpool, and the library's global cut
      drops a whole class whose neighbourhood is less tight.
    """

    def __init__(self, base, subsample_size: int = 500, num_anchors: int = 10, k: int = 50,
                 seed: int = 0):
        self.base, self.subsample_size, self.seed = base, subsample_size, seed
        self.num_anchors, self.k = num_anchors, k

    def _anchors(self, emb, indices_labeled, y) -> list[np.ndarray]:
        from sklearn.cluster import kmeans_plusplus

        per_class = []
        for c in np.unique(y):
            members = np.asarray(indices_labeled)[np.asarray(y) == c]
            n = min(len(members), self.num_anchors)
            _, chosen = kmeans_plusplus(emb[members], n, random_state=self.seed)
            per_class.append(members[chosen])
        return per_class

    def query(self, clf, dataset, indices_unlabeled, indices_labeled, y, n=10):
        from sklearn.preprocessing import normalize

        indices_unlabeled = np.asarray(indices_unlabeled)
        if self.subsample_size >= len(indices_unlabeled):
            return self.base.query(clf, dataset, indices_unlabeled, indices_labeled, y, n=n)
        emb = normalize(clf.embed(dataset), axis=1)
        k = min(self.k, len(indices_unlabeled))
        total, count = np.zeros(len(indices_unlabeled)), np.zeros(len(indices_unlabeled))
        reached = []  # per class: rows its anchors reached, best on average first
        for anchors in self._anchors(emb, indices_labeled, y):
            sim = emb[indices_unlabeled] @ emb[anchors].T  # unlabeled x anchors
            near = np.argpartition(-sim, k - 1, axis=0)[:k]  # k x anchors: each anchor's nearest
            column = np.broadcast_to(np.arange(sim.shape[1]), near.shape)
            class_total, class_count = np.zeros(len(sim)), np.zeros(len(sim))
            np.add.at(class_total, near.ravel(), sim[near, column].ravel())
            np.add.at(class_count, near.ravel(), 1)
            total, count = total + class_total, count + class_count
            rows = np.flatnonzero(class_count)
            mean = class_total[rows] / class_count[rows]
            reached.append(rows[np.argsort(-mean, kind="stable")])
        share = self.subsample_size // max(len(reached), 1)
        keep = list(dict.fromkeys(int(r) for rows in reached for r in rows[:share]))
        rows = np.flatnonzero(count)
        rows = rows[np.argsort(-(total[rows] / count[rows]), kind="stable")]
        taken = set(keep)
        keep += [int(r) for r in rows if r not in taken][:self.subsample_size - len(keep)]
        subset = indices_unlabeled[np.sort(np.asarray(keep[:self.subsample_size], dtype=int))]
        return self.base.query(clf, dataset, subset, indices_labeled, y, n=min(n, len(subset)))


EMBEDDING_STRATEGIES = ("embedding_kmeans", "greedy_coreset", "contrastive")


def head_query(strategy: str, head, embeddings: np.ndarray, labeled: np.ndarray,
               y: np.ndarray, n: int, *, random_share: float = 0.1, candidates: int = 0,
               subsampling: str = "random", seed: int = 0) -> list[Pick]:
    """The next n items by a small-text strategy over the head and the pool's embeddings.

    embeddings: every item (labeled ones too: coresets and anchors measure distance to
    them); labeled: their row indices, y their classes. Returns picks over the unlabeled
    rows, a random control share spread through the batch as in query(). With
    candidates > 0 and a bigger pool, the strategy sees only a subsample: `subsampling`
    "random" (small-text SubsamplingQueryStrategy, `candidates` items) or "anchor"
    (AnchorAL: the class-balanced neighbourhoods of labeled items, library defaults).
    """
    from small_text import SklearnDataset

    if strategy not in HEAD_STRATEGIES or strategy == "auto":
        raise ValueError(f"unknown head strategy {strategy!r}")
    if subsampling not in ("random", "anchor"):
        raise ValueError(f"unknown subsampling {subsampling!r}")
    labeled = np.asarray(labeled, dtype=int)
    unlabeled = np.setdiff1d(np.arange(len(embeddings)), labeled)
    n = _check(len(unlabeled), n)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return [Pick(int(unlabeled[i]), RANDOM, 0.0)
                for i in select_random(len(unlabeled), n, rng)]
    n_control = control_count(n, random_share)
    n_chosen = n - n_control
    scores = margin(head.predict_proba(embeddings[unlabeled]))
    score_of = dict(zip(unlabeled.tolist(), scores.tolist(), strict=True))
    chosen = np.zeros(0, dtype=int)
    if n_chosen:
        np.random.seed(seed % 2**32)  # small-text's k-means/coreset use numpy's global RNG
        strategy_obj = _small_text(strategy)
        if candidates and len(unlabeled) > candidates and subsampling == "anchor" and len(y):
            strategy_obj = ExactAnchorSubsampling(strategy_obj, seed=seed % 2**32)
        elif candidates and len(unlabeled) > candidates:
            from small_text import SubsamplingQueryStrategy

            strategy_obj = SubsamplingQueryStrategy(strategy_obj, subsample_size=candidates)
        dataset = SklearnDataset(np.asarray(embeddings, dtype=np.float32),
                                 np.zeros(len(embeddings), dtype=int),
                                 target_labels=np.arange(head.num_classes))
        chosen = np.asarray(strategy_obj.query(head, dataset, unlabeled, labeled,
                                               np.asarray(y, dtype=int), n=n_chosen), dtype=int)
    reason = DIVERSITY if strategy in ("embedding_kmeans", "greedy_coreset") else UNCERTAINTY
    picks = sorted((Pick(int(i), reason, score_of[int(i)]) for i in chosen),
                   key=lambda p: -p.score)
    rest = np.setdiff1d(unlabeled, chosen)
    return insert_random_control(picks, rest, n, n_control, rng, score_of.__getitem__)


def predictions_stable(previous: np.ndarray | None, current: np.ndarray, num_classes: int,
                       kappa: float) -> tuple[bool, float | None]:
    """Cold-start rule: the head is trusted once two consecutive fits agree on the fixed
    stopping sample with Cohen's kappa >= `kappa` (small-text's KappaAverage signal)."""
    if previous is None or len(previous) != len(current) or not len(current):
        return False, None
    value = _kappa(np.asarray(previous), np.asarray(current), num_classes)
    return value >= kappa, value


def class_samples(predicted: np.ndarray, rows: np.ndarray, k: int, seed: int) -> list[int]:
    """k of `rows` drawn at random within each predicted class, the classes taking turns
    (predicted: the class of each row): typical members of every class, however rare."""
    rng = np.random.default_rng(seed)
    predicted, rows = np.asarray(predicted), np.asarray(rows)
    groups = [rng.permutation(rows[predicted == c]).tolist() for c in np.unique(predicted)]
    turns = [int(i) for row in itertools.zip_longest(*groups) for i in row if i is not None]
    return turns[:k]


def classes_uneven(predicted: np.ndarray, num_classes: int) -> bool:
    """Whether some class is predicted for fewer than half an even share of the rows (under
    1/6 with three classes, 1/4 with two, or never): the case class-balanced picks are for,
    a rare class that uncertain picks starve."""
    predicted = np.asarray(predicted)
    if not len(predicted):
        return False
    counts = np.bincount(predicted, minlength=num_classes)
    return bool(counts.min() < len(predicted) / (2 * num_classes))


def class_sample_share(predicted: np.ndarray, num_classes: int, share: float) -> float:
    """The share of a queue given to class samples: `share` where the predicted classes are
    uneven, half of it where they are even. On even classes class samples cost the head's
    ranking labels; none at all let a fine-tune on the uncertain picks alone collapse
    (docs/bench/label_efficiency.md, "half the share on even classes")."""
    return share if classes_uneven(predicted, num_classes) else share / 2


def with_class_samples(picks: list[Pick], predicted: np.ndarray, rows: np.ndarray,
                       share: float, seed: int) -> list[Pick]:
    """The first len(picks) - k picks (k = share of the batch), the other k class_samples of
    the rows not kept, spread evenly through the batch so any top of the queue holds the
    share. Uncertain picks alone teach a fine-tune on English reviews a narrow neutral class
    (docs/bench/label_efficiency.md, "+strat")."""
    n = len(picks)
    k = int(round(n * share)) if n > 1 else 0
    if not k:
        return picks
    kept = picks[: n - k]
    free = ~np.isin(rows, [p.index for p in kept])
    drawn = [Pick(i, CLASS_SAMPLE, 0.0)
             for i in class_samples(np.asarray(predicted)[free], np.asarray(rows)[free], k, seed)]
    place = {id(p): (j + 0.5) / len(kept) for j, p in enumerate(kept)}
    place.update({id(p): (j + 0.5) / len(drawn) for j, p in enumerate(drawn)})
    return sorted(kept + drawn, key=lambda p: place[id(p)])
