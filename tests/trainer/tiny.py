"""A tiny labeled set and a config that fine-tunes in seconds on one CPU thread."""

from trainer.config import TrainConfig

LABELS = ["negative", "neutral", "positive"]

TEXTS = {
    "positive": ["love these shoes", "great fit and comfy", "excellent quality", "so happy with it",
                 "beautiful color", "works perfectly", "amazing value", "best purchase ever"],
    "negative": ["terrible fit", "broke after a day", "awful quality", "returning it now",
                 "cheap and ugly", "hate this", "waste of money", "fell apart fast"],
    "neutral": ["it is okay", "arrived on tuesday", "average at best", "fits as expected",
                "nothing special", "color as shown", "it is a shirt", "does the job"],
}


def tiny_dataset() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, items in TEXTS.items():
        texts += items
        labels += [label] * len(items)
    return texts, labels


def tiny_config(**overrides) -> TrainConfig:
    values = dict(max_length=32, epochs=1, batch_size=8, learning_rate=1e-4, num_threads=1,
                  val_fraction=0, seed=7, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)
