"""Hyper-parameters of one fine-tuning run, saved next to the weights."""

from dataclasses import asdict, dataclass

from trainer.models import DEFAULT_MODEL, ENGLISH_MINILM, MULTILINGUAL_E5

DEFAULT_LEARNING_RATE = 5e-5
# Defaults of the built-in models where measurements chose others (docs/bench/training.md):
# the small MiniLM with a few hundred labels does better with a higher rate (held-out
# macro-F1 0.63 at 3e-4 vs 0.58 at 5e-5); e5's 250k-word embedding matrix is 81% of its
# weights, and freezing it makes a run ~40% faster at the same quality.
MODEL_DEFAULTS = {
    ENGLISH_MINILM: {"learning_rate": 3e-4, "freeze_word_embeddings": False},
    MULTILINGUAL_E5: {"learning_rate": 5e-5, "freeze_word_embeddings": True},
}


@dataclass
class TrainConfig:
    model_name: str = ""  # built-in name, registered name, hub id or folder; "" = DEFAULT_MODEL
    max_length: int = 128
    epochs: int = 3
    batch_size: int = 16
    # None = the model's default (MODEL_DEFAULTS), else DEFAULT_LEARNING_RATE
    learning_rate: float | None = None
    head_learning_rate: float | None = None  # new classifier head (+ pooler); None = learning_rate
    layer_lr_decay: float = 1.0  # < 1: each encoder layer learns this much slower than the next
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    val_fraction: float = 0.1  # 0 disables validation and early stopping
    patience: int = 2  # epochs without a better validation macro-F1 before stopping
    class_weighting: bool = True
    device: str = ""  # "" = cuda when available, else cpu
    warm_start_from: str | None = None  # folder of a previous version
    max_steps: int | None = None  # cap on optimizer steps (tiny tests)
    num_threads: int | None = None  # CPU threads; None = all CPUs this process may use
    # "probe": a newly initialised linear head starts as a class-weighted logistic regression
    # fitted on the frozen features it sees (linear probe, then fine-tune); "random": as loaded
    head_init: str = "probe"
    class_weight_power: float = 1.0  # weights = balanced ** power; 0.5 = square root
    # keep the word embeddings as loaded; None = the model's default (MODEL_DEFAULTS), else off
    freeze_word_embeddings: bool | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "learning_rate": self.resolved_learning_rate(),
                "freeze_word_embeddings": self.resolved_freeze_word_embeddings()}

    def _model_default(self, key: str, fallback):
        return MODEL_DEFAULTS.get(self.model_name or DEFAULT_MODEL, {}).get(key, fallback)

    def resolved_learning_rate(self) -> float:
        """The explicit learning rate, else the default for the model being fine-tuned."""
        if self.learning_rate is not None:
            return self.learning_rate
        return self._model_default("learning_rate", DEFAULT_LEARNING_RATE)

    def resolved_freeze_word_embeddings(self) -> bool:
        if self.freeze_word_embeddings is not None:
            return self.freeze_word_embeddings
        return self._model_default("freeze_word_embeddings", False)
