"""Zero-shot suggestions from the first item: each label's description against the pool.

With no labels yet there is no head to rank the queue or suggest a label. Every label has a
description (editable; by default `default_description(name)`), and the platform already
stores every pool item's embedding from the project's base encoder
(`trainer.predict.embed_with_base` on the raw text, mean pooled). The zero-shot scorer embeds
only the descriptions, with the same encoder and the e5 "query: " prefix, and scores each item
by the cosine similarity of its stored embedding to each description: a softmax over the
labels at a calibrated temperature. The cold-start queue starts with each predicted class's
clearest items (`confident_picks`); as labels come in, the fast loop's head (trainer/head.py)
takes over: `blend` mixes the two with the weight `zero_shot_weight(n_labels)`. Every
default here was measured (docs/zero_shot.md).

What the product calls, with its stored item embeddings `emb` (float32, n x d), the rows
`labeled` of its labeled items with their classes `y`, and its label set:

    scorer = ZeroShotScorer.from_labels(project.label_set, model_name=base_encoder)
    if not len(labeled):                      # suggestions and the cold-start queue
        proba = scorer.predict_proba(emb)
        first = confident_picks(proba, n)     # rows of emb to ask first
    else:                                     # the fast loop: the head takes over
        head = fit_head(emb[labeled], y, scorer.num_classes, ...)
        model = BlendedScorer(scorer, head, zero_shot_weight(len(labeled)))
        proba = model.predict_proba(emb)      # suggestions; head_query(..., model, ...) ranks

`ZeroShotScorer` and `BlendedScorer` have the head's interface (predict_proba, embed,
num_classes), so `trainer.strategies.head_query` ranks with them as it does with the head.
Pure numpy at import; the encoder is loaded only by `embed_descriptions`. In the platform:
annotator/services/zero_shot.py (descriptions embedded by a worker and cached, the labeling
page's suggestion) and annotator/services/fast_loop.py (`confident_query`, then the blend).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The default description of a label: its name in one sentence about the review's sentiment,
# in the language of the name (a name with Chinese characters gets the same sentence in
# Chinese: the English sentence around Chinese names sent most Chinese reviews to one label,
# macro-F1 0.37-0.64 against 0.75-0.81). One rule for any name, no per-name synonyms; chosen
# on held-out train.csv rows of both benchmark sets (docs/zero_shot.md).
DESCRIPTION_TEMPLATE = "The sentiment of this review is {name}."
DESCRIPTION_TEMPLATE_ZH = "这条评论的情感是{name}的。"
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# e5 was trained with "query: " on the short side of a pair: the description is the query,
# the stored items (raw text, as the pool is embedded) the passages.
DESCRIPTION_PREFIX = "query: "
DESCRIPTION_MAX_LENGTH = 64
# Softmax temperature on the cosine similarities, chosen by the log-loss of both sets'
# held-out train.csv rows together (docs/zero_shot.md).
TEMPERATURE = 0.01
# The head takes over as labels come in: the zero-shot scorer's weight is
# HANDOVER_LABELS / (HANDOVER_LABELS + n_labels), chosen in the simulation on both languages
# over 0 (the head alone from the first label), 15, 20, 25, 30, 40 and 100, a geometric blend
# and a weight measured on the labels so far (docs/zero_shot.md).
HANDOVER_LABELS = 15
# The encoders the scorer was measured with: the "query: " prefix is e5's convention and
# TEMPERATURE was calibrated on multilingual-e5-small's narrow band of cosines; another
# encoder (all-MiniLM-L6-v2, a registered model) has neither, so nothing here applies to it.
MEASURED_ENCODER_FAMILY = "e5"


def default_description(name: str) -> str:
    """The description a label gets when nobody wrote one: its name (whitespace collapsed)
    in DESCRIPTION_TEMPLATE, or in DESCRIPTION_TEMPLATE_ZH when it has Chinese characters."""
    name = " ".join(str(name).split())
    template = DESCRIPTION_TEMPLATE_ZH if HAN.search(name) else DESCRIPTION_TEMPLATE
    return template.format(name=name)


def encoder_measured(model_name: str) -> bool:
    """Whether the scorer's prefix and temperature hold for the base encoder `model_name`
    ("" is the default, multilingual-e5-small): an e5 model."""
    from trainer.models import DEFAULT_MODEL

    name = (model_name or DEFAULT_MODEL).lower().rstrip("/").rpartition("/")[2]
    return MEASURED_ENCODER_FAMILY in re.split(r"[^a-z0-9]+", name)


def describe(labels: Sequence[dict]) -> list[str]:
    """Each label's description: its own ("description", trimmed) or the default from its
    "name"."""
    return [(label.get("description") or "").strip() or default_description(label["name"])
            for label in labels]


def description_inputs(descriptions: Sequence[str]) -> list[str]:
    """The texts the encoder reads for the descriptions (the prefix added)."""
    return [DESCRIPTION_PREFIX + d for d in descriptions]


def embed_descriptions(descriptions: Sequence[str], *, model_name: str = "",
                       max_length: int = DESCRIPTION_MAX_LENGTH, device: str = "",
                       runtime: str = "") -> np.ndarray:
    """The descriptions embedded by the base encoder the pool was embedded with
    (trainer.predict.embed_with_base, mean pooled), len(descriptions) x d, float32."""
    from trainer.predict import embed_with_base

    emb = embed_with_base(description_inputs(descriptions), model_name=model_name,
                          max_length=max_length, device=device, runtime=runtime)
    return np.asarray(emb, dtype=np.float32)


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x / max(float(np.linalg.norm(x)), 1e-12)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pool_center(item_emb: np.ndarray) -> np.ndarray:
    """The mean of the pool's normalized item embeddings (d,): what every item shares.

    Optional (zero_shot_proba's `center`, off by default): centring the items removes the
    part of the similarity every item shares, which rescued English sentences around Chinese
    label names but pushed the predictions towards equal classes and cost 0.13 macro-F1 on
    the skewed clothing set (docs/zero_shot.md).
    """
    item_emb = np.asarray(item_emb, dtype=np.float32)
    if not len(item_emb):
        raise ValueError("no item embeddings to centre on")
    return normalized(item_emb).mean(axis=0)


def zero_shot_similarity(item_emb: np.ndarray, description_emb: np.ndarray, *,
                         center: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every item to every description, n_items x n_labels; with
    `center` (pool_center of the pool), of the centred items."""
    items = normalized(np.atleast_2d(item_emb))
    if center is not None:
        items = normalized(items - np.asarray(center, dtype=np.float32))
    return items @ normalized(np.atleast_2d(description_emb)).T


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def zero_shot_proba(item_emb: np.ndarray, description_emb: np.ndarray, *,
                    temperature: float = TEMPERATURE,
                    center: np.ndarray | None = None) -> np.ndarray:
    """Label probabilities, n_items x n_labels (rows sum to 1): a softmax over the labels
    of the cosine similarities / temperature (TEMPERATURE was calibrated without `center`)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    sim = zero_shot_similarity(item_emb, description_emb, center=center)
    return softmax(sim / temperature)


def zero_shot_weight(n_labels: int, *, handover: float = HANDOVER_LABELS) -> float:
    """The handover rule: the zero-shot scorer's share of the blended prediction after
    n_labels labels, handover / (handover + n_labels): 1 with none, 1/2 at `handover` labels,
    then falling (0.03 at 500 by default). handover=0: the head alone from the first label."""
    if n_labels < 0:
        raise ValueError("n_labels must be >= 0")
    if handover <= 0:
        return 0.0 if n_labels else 1.0
    return float(handover / (handover + n_labels))


def confident_picks(proba: np.ndarray, n: int) -> np.ndarray:
    """The cold start's first n picks, as indices of rows of proba: each predicted class's most
    confident rows, the classes taking turns (the first of each class, then the second ...),
    so the first labels are clear examples of every class the scorer predicts. Measured
    against the most uncertain rows per class (balanced ties): those gave the head ambiguous
    first labels (the head alone at 20 such labels: 0.47 macro-F1 on clothing, 0.63 on zh;
    docs/zero_shot.md)."""
    from trainer.head import pseudo_labels

    proba = np.asarray(proba, dtype=np.float64)
    n = min(n, len(proba))
    if n <= 0:
        return np.zeros(0, dtype=int)
    idx, pred = pseudo_labels(proba, n)  # up to n per class: a small class leaves room
    conf = proba[idx].max(axis=1)
    rank = np.zeros(len(idx), dtype=int)  # each item's place within its class
    for c in np.unique(pred):
        members = np.flatnonzero(pred == c)
        rank[members[np.argsort(-conf[members], kind="stable")]] = np.arange(len(members))
    order = np.lexsort((-conf, rank))
    return idx[order][:n]


def confident_query(model, embeddings: np.ndarray, labeled: np.ndarray, n: int, *,
                    random_share: float = 0.1, seed: int = 0, reason: str = "seed") -> list:
    """The cold start's next n picks over the unlabeled rows of `embeddings`, as
    trainer.strategies.Pick: confident_picks of `model`'s probabilities (the zero-shot
    scorer, or the blended one), with the random control share spread through the batch as
    head_query does. The simulation's "confident" cold start, for the product's fast loop."""
    from trainer.strategies import Pick, control_count, insert_random_control

    unlabeled = np.setdiff1d(np.arange(len(embeddings)), np.asarray(labeled, dtype=int))
    n = min(n, len(unlabeled))
    if n <= 0:
        return []
    n_control = control_count(n, random_share)
    proba = model.predict_proba(np.asarray(embeddings, dtype=np.float32)[unlabeled])
    rows = confident_picks(proba, n - n_control)
    confidence = dict(zip(unlabeled.tolist(), proba.max(axis=1).tolist(), strict=True))
    picks = [Pick(int(unlabeled[r]), reason, confidence[int(unlabeled[r])]) for r in rows]
    rest = np.setdiff1d(unlabeled, unlabeled[rows])
    return insert_random_control(picks, rest, n, n_control, np.random.default_rng(seed),
                                 confidence.__getitem__)


def blend(zero_shot: np.ndarray, head: np.ndarray, weight: float) -> np.ndarray:
    """weight * zero_shot + (1 - weight) * head: rows still sum to 1."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    return weight * np.asarray(zero_shot, dtype=np.float64) + (1 - weight) * np.asarray(
        head, dtype=np.float64)


@dataclass
class ZeroShotScorer:
    """The zero-shot scorer with the head's interface (predict_proba, embed, num_classes),
    so small-text strategies (trainer.strategies.head_query) rank with it."""

    description_emb: np.ndarray
    center: np.ndarray | None = None
    temperature: float = TEMPERATURE

    @classmethod
    def from_labels(cls, labels: Sequence[dict], *, model_name: str = "", device: str = "",
                    runtime: str = "") -> "ZeroShotScorer":
        """The scorer of `labels` (dicts with "name" and optionally "description"), their
        descriptions embedded by the base encoder `model_name` (the pool's)."""
        return cls(embed_descriptions(describe(labels), model_name=model_name, device=device,
                                      runtime=runtime))

    @property
    def num_classes(self) -> int:
        return len(self.description_emb)

    def predict_proba(self, x) -> np.ndarray:
        x = np.asarray(getattr(x, "x", x), dtype=np.float32)  # a small-text dataset or array
        return zero_shot_proba(x, self.description_emb, temperature=self.temperature,
                               center=self.center)

    def embed(self, dataset, return_proba: bool = False, pbar=None, **_):
        """small-text's embedding strategies call this: the stored embeddings themselves."""
        x = np.asarray(getattr(dataset, "x", dataset), dtype=np.float32)
        return (x, self.predict_proba(x)) if return_proba else x


@dataclass
class BlendedScorer:
    """The zero-shot scorer and a fitted head (trainer.head.EmbeddingHead) mixed by `blend`
    with the zero-shot share `weight` (zero_shot_weight); the head's interface again."""

    zero_shot: ZeroShotScorer
    head: object
    weight: float

    @property
    def num_classes(self) -> int:
        return self.zero_shot.num_classes

    def predict_proba(self, x) -> np.ndarray:
        x = np.asarray(getattr(x, "x", x), dtype=np.float32)
        if self.weight >= 1.0:
            return self.zero_shot.predict_proba(x)
        if self.weight <= 0.0:
            return np.asarray(self.head.predict_proba(x), dtype=np.float64)
        return blend(self.zero_shot.predict_proba(x), self.head.predict_proba(x), self.weight)

    def embed(self, dataset, return_proba: bool = False, pbar=None, **_):
        x = np.asarray(getattr(dataset, "x", dataset), dtype=np.float32)
        return (x, self.predict_proba(x)) if return_proba else x
