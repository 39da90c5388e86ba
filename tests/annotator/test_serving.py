"""The in-process model holder: lazy loading, one load per version, swaps without waiting."""

import subprocess
import sys
import threading

import numpy as np
import pytest
from django.test import override_settings

from annotator.ml import serving
from annotator.ml.artifacts import model_version_local_path
from annotator.models import ModelVersion
from annotator.services.training import model_version_activate
from tests.annotator.serving_helpers import add_version

pytestmark = pytest.mark.django_db(transaction=True)  # loader threads use their own connections



@pytest.fixture
def fake_load(monkeypatch):
    """Replace the real loader: records loads, can be held open with an event."""
    calls, gate = [], threading.Event()
    gate.set()

    def load(version):
        calls.append(version.version)
        gate.wait(timeout=30)
        if version.artifact_path == "broken":
            raise OSError("no config.json")
        return serving.ServedModel(version_id=version.id, version=version.version,
                                   label_names=["negative", "positive"], tokenizer=None,
                                   model=None)

    monkeypatch.setattr(serving, "_load", load)
    monkeypatch.setattr("annotator.services.training.on_model_activated", lambda version: None)
    return calls, gate


def _version(project, number, *, active=False, path=""):
    return ModelVersion.objects.create(project=project, version=number, is_active=active,
                                       artifact_path=path or f"projects/{project.id}/v{number}")


def test_importing_the_web_app_loads_no_model_and_no_torch():
    code = ("import django, sys; django.setup(); import annotator.urls, annotator.api.predict, "
            "annotator.ml.serving; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": ""})
    assert out.stdout.strip() == "False"


def test_a_project_without_an_active_version_raises_no_active_model(project, fake_load):
    _version(project, 1)
    with pytest.raises(serving.NoActiveModel):
        serving.served_model(project.id)
    assert fake_load[0] == []


def test_the_active_version_is_loaded_once_and_reused(project, fake_load):
    _version(project, 1, active=True)
    first = serving.served_model(project.id)
    assert serving.served_model(project.id) is first
    assert fake_load[0] == [1]


def test_activating_another_version_swaps_the_model(project, fake_load):
    _version(project, 1, active=True)
    v2 = _version(project, 2)
    assert serving.served_model(project.id).version == 1
    model_version_activate(version=v2)
    assert serving.served_model(project.id).version == 2
    assert fake_load[0] == [1, 2]


def test_requests_keep_the_old_model_while_the_new_one_loads(project, fake_load):
    calls, gate = fake_load
    _version(project, 1, active=True)
    v2 = _version(project, 2)
    serving.served_model(project.id)
    model_version_activate(version=v2)
    gate.clear()  # the next load hangs until released
    loader = threading.Thread(target=serving.served_model, args=(project.id,))
    loader.start()
    for _ in range(3000):  # until the loader is inside the (held) load, 30 s at most
        if calls == [1, 2]:
            break
        loader.join(0.01)
    assert calls == [1, 2]
    # the loader holds the project's load lock: others answer at once with version 1
    assert [serving.served_model(project.id).version for _ in range(3)] == [1, 1, 1]
    gate.set()
    loader.join()
    assert serving.served_model(project.id).version == 2
    assert calls == [1, 2]


def test_a_version_that_fails_to_load_leaves_the_old_one_answering(project, fake_load):
    _version(project, 1, active=True)
    broken = _version(project, 2, path="broken")
    serving.served_model(project.id)
    model_version_activate(version=broken)
    assert serving.served_model(project.id).version == 1
    assert serving.served_model(project.id).version == 1
    assert fake_load[0] == [1, 2]  # not retried on every request


def test_a_failed_load_with_nothing_to_fall_back_on_raises_model_unavailable(project, fake_load):
    _version(project, 1, active=True, path="broken")
    with pytest.raises(serving.ModelUnavailable, match="no config.json"):
        serving.served_model(project.id)


@override_settings(SERVE_RUNTIME="torch", SERVE_INT8=True)
def test_int8_serving_quantizes_the_linear_layers_and_still_predicts(project):
    add_version(project, 1, active=True)
    served = serving.served_model(project.id)
    linear_types = {type(m).__module__ for m in served.model.modules()
                    if "Linear" in type(m).__name__}
    assert linear_types and all("quantized" in name for name in linear_types)
    predictions = served.predict(["love it", "hate it"], max_length=16)
    assert [sorted(p["probabilities"]) for p in predictions] == [sorted(served.label_names)] * 2


@pytest.mark.slow
def test_the_api_serves_with_the_pool_scorings_onnx_path(project, monkeypatch):
    from trainer import onnx_runtime
    from trainer.predict import load_scorer

    monkeypatch.delenv("ANNOTATOR_INFERENCE", raising=False)
    version = add_version(project, 1, active=True)
    folder = model_version_local_path(version)
    texts = ["love these shoes", "broke after a day and the zipper is cheap", "it is okay",
             "the color is nice but it runs small, order a size up " * 3]
    with override_settings(SERVE_RUNTIME="", SERVE_INT8=False):
        served = serving.served_model(project.id)
        got = served.predict(texts, max_length=16)
    # the same cached export that pool scoring (trainer.predict.load_scorer) uses
    _, scorer = load_scorer(str(folder), device="cpu")
    assert isinstance(served.model, onnx_runtime.OnnxScorer)
    assert served.model.path == scorer.path == onnx_runtime.export_onnx(folder)
    with override_settings(SERVE_RUNTIME="torch"):
        expected = serving._load(version).predict(texts, max_length=16)  # torch, fp32
    for ours, reference in zip(got, expected, strict=True):
        for label, p in reference["probabilities"].items():
            assert ours["probabilities"][label] == pytest.approx(p, abs=0.01)


def test_a_version_is_served_at_the_max_length_it_was_trained_with(project, monkeypatch):
    seen = []
    monkeypatch.setattr("trainer.predict.predict_proba",
                        lambda *a, **kw: seen.append(kw["max_length"]) or np.full((1, 3), 1 / 3))
    add_version(project, 1, active=True)
    project.max_length = 999  # the project's current setting does not change an old version
    project.save()
    serving.predict(project_id=project.id, texts=["love it"])
    assert seen == [16]
