"""A site turns LoRA on through ANNOTATOR_TRAINING_OVERRIDES: stored, activated, served."""

import pytest
from django.core.management import call_command

from annotator.ml import artifacts, serving
from annotator.models import ModelVersion
from annotator.services import training as svc
from tests.annotator.training_helpers import add_labeled_items
from trainer.models import resolve_model_name

pytestmark = pytest.mark.slow

LORA = {"model_name": "all-MiniLM-L6-v2", "lora_rank": 4, "max_steps": 2, "batch_size": 8,
        "num_threads": 1, "val_fraction": 0}



def test_a_lora_version_is_stored_activated_and_served(project, labeler, settings,
                                                       monkeypatch):
    monkeypatch.setattr(svc, "on_model_activated", lambda version: None)  # no pool scoring
    add_labeled_items(project, labeler, gold=6)
    settings.TRAINING_OVERRIDES = LORA
    settings.TRAINING_WARM_START = True  # a LoRA run still starts from the base
    call_command("retrain", str(project.id))
    call_command("retrain", str(project.id), "--force")

    version = ModelVersion.objects.get(is_active=True)
    assert version.version == 2
    assert version.base_model == resolve_model_name("all-MiniLM-L6-v2")
    files = artifacts.artifact_files(version)
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json",
            "tokenizer.json", "training.json"} <= set(files)
    assert "model.safetensors" not in files
    served = serving.served_model(project.id)
    assert type(served.model).__name__ == "OnnxScorer"
    [prediction] = served.predict(["love these shoes"])
    assert prediction["label"] in project.label_names
    assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-4)
