"""Hyper-parameters of one fine-tuning run, saved next to the weights."""

from dataclasses import asdict, dataclass

from trainer.models import DEFAULT_MODEL, ENGLISH_MINILM, MULTILINGUAL_E5

# Fallbacks for any model; the built-in models have measured defaults of their own
# (docs/bench/training.md): the small MiniLM with a few hundred labels does better at 3e-4
# (held-out macro-F1 0.63 vs 0.58 at 5e-5). e5's 250k-word embedding matrix is 81% of its
# weights: frozen, a run is ~40% faster at the same quality; with the layers below the top
# learning 0.8x as fast as the one above, 1e-4 beat 5e-5 on both languages. A max length
# fitted to the texts (None) read long English reviews whole (+1.7 points for e5); MiniLM
# keeps 128, where its 3e-4 recipe was measured (a fitted length lost 9 points on one draw).
GENERAL_DEFAULTS = {"learning_rate": 5e-5, "layer_lr_decay": 1.0,
                    "freeze_word_embeddings": False, "max_length": None}
MODEL_DEFAULTS = {
    ENGLISH_MINILM: {"learning_rate": 3e-4, "max_length": 128},
    MULTILINGUAL_E5: {"learning_rate": 1e-4, "layer_lr_decay": 0.8,
                      "freeze_word_embeddings": True},
}
# A LoRA run trains only small adapters and the head: a higher rate, the same for every layer
# (docs/bench/lora.md).
LORA_DEFAULTS = {"learning_rate": 5e-4, "layer_lr_decay": 1.0}
DEFAULT_LEARNING_RATE = GENERAL_DEFAULTS["learning_rate"]


@dataclass
class TrainConfig:
    model_name: str = ""  # built-in name, registered name, hub id or folder; "" = DEFAULT_MODEL
    # tokens per text; None = the model's default, and where that is None too, fitted to the
    # training texts (trainer.data.fitting_max_length)
    max_length: int | None = None
    epochs: int = 3
    batch_size: int = 16
    # on an accelerator, big runs grow the batch (and the learning rate): trainer.train.
    # accelerator_batch; no effect on CPU, below 3,200 texts, or with another batch_size
    accelerator_batching: bool = True
    # None (here and below): the model's default (MODEL_DEFAULTS), else GENERAL_DEFAULTS
    learning_rate: float | None = None
    head_learning_rate: float | None = None  # new classifier head (+ pooler); None = learning_rate
    # < 1: each encoder layer learns this many times as fast as the one above it
    layer_lr_decay: float | None = None
    freeze_word_embeddings: bool | None = None  # keep the word embeddings as loaded
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
    # LoRA (peft): rank > 0 freezes the encoder and trains low-rank adapters on the target
    # linear layers plus the head and pooler; the version saves only those (0 = full
    # fine-tune). Rank 8, alpha 16 are peft's and the LoRA paper's usual choice; adapting
    # every linear layer (attention and feed-forward: BERT's query, key, value, dense), not
    # just query and value, is what lets LoRA come close to a full fine-tune (QLoRA paper).
    lora_rank: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] = ("query", "key", "value", "dense")

    def to_dict(self) -> dict:
        return {**asdict(self), **{key: self.resolved(key) for key in GENERAL_DEFAULTS}}

    def resolved(self, key: str):
        """The explicit value of a per-model setting, else the model's default."""
        value = getattr(self, key)
        if value is not None:
            return value
        if self.lora_rank and key in LORA_DEFAULTS:
            return LORA_DEFAULTS[key]
        return MODEL_DEFAULTS.get(self.model_name or DEFAULT_MODEL, {}).get(
            key, GENERAL_DEFAULTS[key])
