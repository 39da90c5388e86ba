"""Hyper-parameters of one fine-tuning run, saved next to the weights."""

from dataclasses import asdict, dataclass

DEFAULT_LEARNING_RATE = 5e-5
# The small bundled all-MiniLM-L6-v2 with a few hundred labels does better with a higher
# rate (docs/bench/training.md: held-out macro-F1 0.63 at 3e-4 vs 0.58 at 5e-5).
BUNDLED_MODEL_LEARNING_RATE = 3e-4


@dataclass
class TrainConfig:
    model_name: str = ""  # Hugging Face id or local path; "" = bundled all-MiniLM-L6-v2
    max_length: int = 128
    epochs: int = 3
    batch_size: int = 16
    # None = BUNDLED_MODEL_LEARNING_RATE for the bundled MiniLM (model_name ""), else 5e-5
    learning_rate: float | None = None
    head_learning_rate: float | None = None  # new classifier head (+ pooler); None = learning_rate
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

    def to_dict(self) -> dict:
        return {**asdict(self), "learning_rate": self.resolved_learning_rate()}

    def resolved_learning_rate(self) -> float:
        """The explicit learning rate, else the default for the model being fine-tuned."""
        if self.learning_rate is not None:
            return self.learning_rate
        return BUNDLED_MODEL_LEARNING_RATE if not self.model_name else DEFAULT_LEARNING_RATE
