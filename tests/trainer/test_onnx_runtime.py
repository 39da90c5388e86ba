"""The ONNX inference path: close to torch fp32, exported once, the default on CPU."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.trainer.tiny import LABELS
from trainer import onnx_runtime
from trainer.predict import embed, load_scorer, predict_and_embed, predict_proba

pytest.importorskip("onnxruntime")

TEXTS = ["ok", "this dress is lovely and the fabric is soft but it runs a little small",
         "bad", "fine fit, nice color", "returned it the next day because the zipper broke",
         "质量很好，穿着舒服", "love these shoes " * 20]


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    """The small MiniLM with a head scaled up so probabilities are far from uniform (an
    untrained head gives ~1/3 everywhere, and a 0.01 bound would then prove little)."""
    import torch

    from trainer.models import load_for_training

    torch.manual_seed(0)
    tokenizer, model = load_for_training("all-MiniLM-L6-v2", LABELS)
    with torch.no_grad():
        model.classifier.weight.mul_(40)
    out = tmp_path_factory.mktemp("version")
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def reference(version_dir):
    tokenizer, model = load_scorer(str(version_dir), device="cpu", runtime="torch")
    return predict_and_embed(model, tokenizer, TEXTS, max_length=64, device="cpu")


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# the default (fp32 graph) is held to 0.01; int8 is opt-in and looser (docs/bench/serving.md)
@pytest.mark.parametrize("int8, bound", [(False, 0.01), (True, 0.1)])
def test_onnx_probabilities_are_close_to_torch_fp32(version_dir, cache, reference, int8, bound):
    expected, _ = reference
    assert expected.max() > 0.6  # the bound below is about confident predictions too
    tokenizer, _ = load_scorer(str(version_dir), device="cpu", runtime="torch")
    scorer = onnx_runtime.OnnxScorer(onnx_runtime.export_onnx(version_dir, cache, int8=int8))
    proba = predict_proba(scorer, tokenizer, TEXTS, max_length=64)
    assert np.abs(proba - expected).max() < bound


# int8 moves the embeddings visibly (cosine 0.87-0.95 here): one reason it is opt-in
@pytest.mark.parametrize("int8, min_cosine", [(False, 0.99999), (True, 0.8)])
def test_onnx_embeddings_point_the_same_way_as_torch(version_dir, cache, reference, int8,
                                                     min_cosine):
    _, expected = reference
    tokenizer, _ = load_scorer(str(version_dir), device="cpu", runtime="torch")
    scorer = onnx_runtime.OnnxScorer(onnx_runtime.export_onnx(version_dir, cache, int8=int8))
    emb = embed(scorer, tokenizer, TEXTS, max_length=64)
    assert emb.shape == expected.shape
    assert _cosine(emb, expected).min() > min_cosine


def test_length_buckets_keep_the_input_order(version_dir, cache):
    tokenizer, _ = load_scorer(str(version_dir), device="cpu", runtime="torch")
    scorer = onnx_runtime.OnnxScorer(onnx_runtime.export_onnx(version_dir, cache))
    batched, emb = predict_and_embed(scorer, tokenizer, TEXTS, batch_size=2, max_length=64)
    for i, text in enumerate(TEXTS):
        alone, alone_emb = predict_and_embed(scorer, tokenizer, [text], max_length=64)
        np.testing.assert_allclose(batched[i], alone[0], atol=1e-4)
        assert _cosine(emb[i:i + 1], alone_emb)[0] > 0.999


def test_length_batches_group_similar_lengths():
    encoded = [[1] * n for n in (9, 2, 7, 3, 8, 1)]
    assert onnx_runtime.length_batches(encoded, 2) == [[5, 1], [3, 2], [4, 0]]


def test_a_version_is_exported_once_and_the_file_reused(version_dir, tmp_path, monkeypatch):
    first = onnx_runtime.export_onnx(version_dir, tmp_path, int8=True)
    written = first.stat().st_mtime_ns
    monkeypatch.setattr(onnx_runtime, "_export_fp32",
                        lambda *a: pytest.fail("exported a second time"))
    again = onnx_runtime.export_onnx(version_dir, tmp_path, int8=True)
    assert again == first and again.stat().st_mtime_ns == written
    assert [p.name for p in tmp_path.rglob("*.onnx")] == ["model.int8.onnx"]  # no leftovers


def test_load_scorer_gives_the_cached_onnx_session_on_cpu(version_dir, cache, monkeypatch):
    monkeypatch.delenv("ANNOTATOR_INFERENCE", raising=False)
    monkeypatch.setattr(onnx_runtime, "onnx_cache_dir", lambda: cache)
    _, model = load_scorer(str(version_dir), device="cpu")
    assert isinstance(model, onnx_runtime.OnnxScorer)
    assert model.path == onnx_runtime.export_onnx(version_dir, cache, int8=False)
    assert model.config.num_labels == len(LABELS)
    assert predict_proba(model, None, [], max_length=8).shape == (0, len(LABELS))


def test_annotator_inference_torch_opts_out(version_dir, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_INFERENCE", "torch")
    _, model = load_scorer(str(version_dir), device="cpu")
    assert not isinstance(model, onnx_runtime.OnnxScorer)
    with pytest.raises(ValueError, match="unknown inference runtime"):
        onnx_runtime.runtime("tensorrt")


def test_cuda_scores_with_torch(version_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    tokenizer, model = load_scorer(str(version_dir), device="cuda")
    assert not isinstance(model, onnx_runtime.OnnxScorer)
    proba, _ = predict_and_embed(model, tokenizer, TEXTS, max_length=64, device="cuda")
    assert proba.shape == (len(TEXTS), len(LABELS))


def test_the_inference_module_imports_without_django_torch_or_onnxruntime():
    code = ("import sys, trainer.onnx_runtime, trainer.predict\n"
            "assert not {'django', 'torch', 'onnxruntime'} & set(sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_base_encoder_embeddings_take_the_onnx_path_on_cpu(monkeypatch, tmp_path):
    """The fast loop's pool embeddings: the same vectors as torch, from the exported graph."""
    from trainer.predict import embed_with_base

    monkeypatch.setenv("ANNOTATOR_MODEL_DIR", str(tmp_path))  # onnx cache: a fresh export
    exported = []
    real_export = onnx_runtime.export_onnx
    monkeypatch.setattr(onnx_runtime, "export_onnx",
                        lambda *a, **k: exported.append(a[0]) or real_export(*a, **k))
    onnx = embed_with_base(TEXTS, model_name="all-MiniLM-L6-v2", max_length=64, device="cpu")
    torch_emb = embed_with_base(TEXTS, model_name="all-MiniLM-L6-v2", max_length=64,
                                device="cpu", runtime="torch")
    assert len(exported) == 1
    assert onnx.shape == torch_emb.shape == (len(TEXTS), 384)
    assert _cosine(onnx, torch_emb).min() > 0.99999
