"""LoRA runs: a small adapter folder, served merged like a full version (tiny MiniLM runs)."""

import json
import shutil

import numpy as np
import pytest
from safetensors import safe_open

from tests.trainer.tiny import LABELS, train_tiny
from trainer.config import TrainConfig
from trainer.models import load_classifier, resolve_model_name
from trainer.predict import load_scorer, predict_proba

pytestmark = pytest.mark.slow

TEXTS = ["love these shoes", "broke after a day", "it is okay", "great fit but the color is off"]


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    train_tiny(out, lora_rank=4, learning_rate=1e-2)  # big steps: the adapter moves visibly
    return out


def _folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _adapter_tensors(folder) -> dict:
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def _unmerged(folder):
    """The version as peft loads it, adapters kept apart from the base weights."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_name("all-MiniLM-L6-v2"), config=AutoConfig.from_pretrained(folder),
        dtype=torch.float32)
    return PeftModel.from_pretrained(base, folder).eval()


def test_a_lora_version_saves_an_adapter_much_smaller_than_a_full_version(lora_dir, tmp_path):
    train_tiny(tmp_path)
    assert (lora_dir / "adapter_config.json").exists()
    assert not (lora_dir / "model.safetensors").exists()
    assert _folder_bytes(lora_dir) < _folder_bytes(tmp_path) / 10


def test_the_folder_names_its_base_and_keeps_the_label_names(lora_dir):
    base = resolve_model_name("all-MiniLM-L6-v2")
    adapter = json.loads((lora_dir / "adapter_config.json").read_text())
    info = json.loads((lora_dir / "training.json").read_text())
    config = json.loads((lora_dir / "config.json").read_text())
    assert adapter["base_model_name_or_path"] == base == info["lora_base_model"]
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert config["architectures"] == ["BertForSequenceClassification"]


def test_training_json_records_the_lora_settings(lora_dir):
    config = json.loads((lora_dir / "training.json").read_text())["config"]
    assert config["lora_rank"] == 4 and config["lora_alpha"] == 16
    assert config["lora_dropout"] == 0.1
    assert config["lora_target_modules"] == ["query", "key", "value", "dense"]


def test_only_adapters_head_and_pooler_were_trained_and_saved(lora_dir):
    tensors = _adapter_tensors(lora_dir)
    kinds = {("lora" if ".lora_" in name else name.split(".")[2]) for name in tensors}
    assert kinds == {"lora", "classifier", "bert"}
    assert all(".pooler." in name for name in tensors if name.split(".")[2] == "bert"
               and ".lora_" not in name)
    assert not any("pooler" in name and ".lora_" in name for name in tensors)
    trained = json.loads((lora_dir / "training.json").read_text())["trainable_parameters"]
    assert trained == sum(t.numel() for t in tensors.values())
    assert any(t.abs().max() > 0 for name, t in tensors.items() if "lora_B" in name)


def test_the_merged_model_predicts_what_the_adapter_model_predicts(lora_dir):
    tokenizer, merged = load_classifier(str(lora_dir), device="cpu")
    assert type(merged).__name__ == "BertForSequenceClassification"
    assert merged.config.id2label == dict(enumerate(LABELS))
    expected = predict_proba(_unmerged(lora_dir), tokenizer, TEXTS, max_length=32, device="cpu")
    got = predict_proba(merged, tokenizer, TEXTS, max_length=32, device="cpu")
    np.testing.assert_allclose(got, expected, atol=1e-5)
    _, base = load_classifier(resolve_model_name("all-MiniLM-L6-v2"), device="cpu")
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(merged.state_dict()[query], base.state_dict()[query])


def test_the_onnx_scorer_of_a_lora_version_agrees_with_the_merged_model(lora_dir, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("ANNOTATOR_MODEL_DIR", str(tmp_path))  # a fresh export cache
    tokenizer, merged = load_classifier(str(lora_dir), device="cpu")
    expected = predict_proba(merged, tokenizer, TEXTS, max_length=32, device="cpu")
    tokenizer, scorer = load_scorer(str(lora_dir), device="cpu", runtime="onnx")
    assert type(scorer).__name__ == "OnnxScorer"
    got = predict_proba(scorer, tokenizer, TEXTS, max_length=32)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def _moved(lora_dir, tmp_path):
    """The version copied to a machine where the recorded base folder does not exist."""
    moved = tmp_path / "version"
    shutil.copytree(lora_dir, moved)
    adapter = json.loads((moved / "adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = "/nowhere/base-model"
    (moved / "adapter_config.json").write_text(json.dumps(adapter))
    return moved


def test_a_lora_version_finds_its_base_by_name_on_another_machine(lora_dir, tmp_path):
    moved = _moved(lora_dir, tmp_path)  # training.json still names the built-in base
    tokenizer, model = load_classifier(str(moved), device="cpu")
    _, original = load_classifier(str(lora_dir), device="cpu")
    np.testing.assert_allclose(predict_proba(model, tokenizer, TEXTS, max_length=32),
                               predict_proba(original, tokenizer, TEXTS, max_length=32),
                               atol=1e-6)


def test_a_lora_version_whose_base_is_gone_names_the_missing_folder(lora_dir, tmp_path):
    moved = _moved(lora_dir, tmp_path)
    (moved / "training.json").unlink()
    with pytest.raises(FileNotFoundError, match="/nowhere/base-model"):
        load_classifier(str(moved), device="cpu")


@pytest.mark.parametrize("lora_rank", [4, 0])
def test_a_lora_version_is_no_warm_start_the_run_starts_from_the_base(lora_dir, tmp_path,
                                                                       lora_rank):
    train_tiny(tmp_path, lora_rank=lora_rank, warm_start_from=str(lora_dir))
    info = json.loads((tmp_path / "training.json").read_text())
    assert info["config"]["warm_start_from"] is None
    assert info["config"]["resolved_model"] == resolve_model_name("all-MiniLM-L6-v2")
    assert info["head_probed"] is True  # a new head, as from the base


def test_a_lora_run_starts_from_the_base_even_when_warm_started_from_a_full_version(tmp_path):
    full, lora = tmp_path / "full", tmp_path / "lora"
    train_tiny(full)
    train_tiny(lora, lora_rank=4, warm_start_from=str(full))
    adapter = json.loads((lora / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == resolve_model_name("all-MiniLM-L6-v2")


def test_a_lora_run_defaults_to_a_higher_learning_rate_without_layer_decay():
    full, lora = TrainConfig(), TrainConfig(lora_rank=8)
    assert lora.resolved("learning_rate") > full.resolved("learning_rate")
    assert lora.resolved("layer_lr_decay") == 1.0 != full.resolved("layer_lr_decay")
    assert TrainConfig(lora_rank=8, learning_rate=1e-3).resolved("learning_rate") == 1e-3
