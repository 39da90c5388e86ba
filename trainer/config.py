"""Hyper-parameters of one fine-tuning run, saved next to the weights."""

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    model_name: str = ""  # Hugging Face id or local path; "" = bundled all-MiniLM-L6-v2
    max_length: int = 128
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
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

    def to_dict(self) -> dict:
        return asdict(self)
