"""Batched scoring: order kept through length bucketing, padding-free embeddings, int8."""

import numpy as np
import pytest

from tests.trainer.tiny import LABELS
from trainer.predict import embed, predict_and_embed, predict_proba, quantize_int8

TEXTS = ["ok", "this dress is lovely and the fabric is soft but it runs a little small",
         "bad", "fine fit, nice color", "returned it the next day because the zipper broke"]


@pytest.fixture(scope="module")
def classifier():
    import torch

    from trainer.models import load_for_training

    torch.manual_seed(0)
    tokenizer, model = load_for_training("", LABELS)  # untrained head: fine for plumbing
    model.eval()
    return tokenizer, model


def test_probabilities_come_back_in_input_order(classifier):
    tokenizer, model = classifier
    batched = predict_proba(model, tokenizer, TEXTS, batch_size=2, max_length=32)
    one_by_one = np.vstack([predict_proba(model, tokenizer, [t], max_length=32) for t in TEXTS])
    assert batched.shape == (len(TEXTS), len(LABELS))
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_embeddings_ignore_padding(classifier):
    tokenizer, model = classifier
    alone = embed(model, tokenizer, [TEXTS[0]], max_length=32)
    padded = embed(model, tokenizer, TEXTS, batch_size=8, max_length=32)
    assert padded.shape == (len(TEXTS), model.config.hidden_size)
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-4)


def test_one_pass_gives_the_same_probabilities_and_embeddings(classifier):
    tokenizer, model = classifier
    proba, emb = predict_and_embed(model, tokenizer, TEXTS, max_length=32)
    np.testing.assert_allclose(proba, predict_proba(model, tokenizer, TEXTS, max_length=32),
                               atol=1e-6)
    np.testing.assert_allclose(emb, embed(model, tokenizer, TEXTS, max_length=32), atol=1e-6)


def test_no_texts_give_an_empty_array(classifier):
    tokenizer, model = classifier
    assert predict_proba(model, tokenizer, [], max_length=32).shape == (0, len(LABELS))


def test_int8_quantized_model_scores_close_to_the_float_one(classifier):
    import copy

    import torch

    tokenizer, model = classifier
    quantized = quantize_int8(copy.deepcopy(model))
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.modules())
    exact = predict_proba(model, tokenizer, TEXTS, max_length=32)
    approx = predict_proba(quantized, tokenizer, TEXTS, max_length=32, device="cpu")
    assert np.abs(exact - approx).max() < 0.05
