"""Distillation: a shallower copy of a version learns its predictions (tiny MiniLM runs)."""

import json

import numpy as np
import pytest

from tests.trainer.tiny import LABELS, tiny_config, tiny_dataset
from trainer.distill import DistillConfig, distill, soft_targets, truncated_copy
from trainer.models import is_distilled_version, load_classifier
from trainer.predict import load_scorer, predict_proba
from trainer.train import _starting_point

pytestmark = pytest.mark.slow

POOL = ["the strap snapped on day two", "fits nicely and looks great", "it came in a box",
        "worst zipper ever", "soft fabric, love it", "size chart was accurate",
        "colour faded after one wash", "my daughter adores it", "plain grey tee"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A teacher fitted well past the tiny default, so its predictions are worth copying."""
    from trainer.train import train

    out = tmp_path_factory.mktemp("teacher")
    texts, labels = tiny_dataset()
    train(texts=texts, labels=labels, label_names=LABELS, output_dir=out,
          config=tiny_config(epochs=12, learning_rate=5e-4))
    return out


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    texts, labels = tiny_dataset()
    result = distill(teacher_dir=teacher, pool_texts=POOL, output_dir=out,
                     labeled_texts=texts, labels=labels, eval_texts=texts, eval_labels=labels,
                     config=DistillConfig(layers=2, epochs=25, batch_size=8,
                                          learning_rate=1e-3, num_threads=1, device="cpu"))
    return out, result


def _kl_to_teacher(teacher_dir, model, tokenizer, texts) -> float:
    t_tok, t_model = load_classifier(str(teacher_dir), device="cpu")
    p = predict_proba(t_model, t_tok, texts, max_length=32, device="cpu")
    q = predict_proba(model, tokenizer, texts, max_length=32, device="cpu")
    return float(np.mean(np.sum(p * (np.log(p + 1e-9) - np.log(q + 1e-9)), axis=1)))


def test_the_student_keeps_the_bottom_layers_and_is_saved_as_a_plain_version(teacher, student):
    out, result = student
    tokenizer, model = load_classifier(str(out), device="cpu")
    assert model.config.num_hidden_layers == 2 and len(model.base_model.encoder.layer) == 2
    assert result.layers == 2 and result.teacher_layers == 6
    assert [model.config.id2label[i] for i in range(3)] == LABELS
    info = json.loads((out / "training.json").read_text())
    assert info["distillation"]["teacher"] == str(teacher)
    assert info["config"]["max_length"] == result.max_length == 32
    assert is_distilled_version(out) and not is_distilled_version(teacher)


def test_distillation_moves_the_student_toward_the_teacher(teacher, student):
    out, result = student
    texts = tiny_dataset()[0] + POOL
    t_tok, t_model = load_classifier(str(teacher), device="cpu")
    before = _kl_to_teacher(teacher, truncated_copy(t_model, 2).eval(), t_tok, texts)
    tokenizer, model = load_classifier(str(out), device="cpu")
    after = _kl_to_teacher(teacher, model, tokenizer, texts)
    assert after < before / 2, (before, after)
    assert result.agreement >= 0.9  # on the labeled texts, where the teacher is confident
    assert result.teacher_metrics["macro_f1"] > 0.8


def test_the_onnx_scorer_serves_the_student_as_torch_does(student):
    out, _ = student
    texts = POOL[:4]
    tokenizer, model = load_classifier(str(out), device="cpu")
    o_tok, onnx_model = load_scorer(str(out), device="cpu", runtime="onnx")
    np.testing.assert_allclose(predict_proba(onnx_model, o_tok, texts, max_length=32),
                               predict_proba(model, tokenizer, texts, max_length=32),
                               atol=1e-4)


def test_a_distilled_version_is_no_warm_start(student):
    out, _ = student
    config = tiny_config(warm_start_from=str(out))
    assert _starting_point(config) == config.model_name


def test_soft_targets_flatten_with_temperature_and_keep_the_order():
    proba = np.array([[0.7, 0.2, 0.1]])
    soft = soft_targets(proba, 2.0)
    assert np.isclose(soft.sum(), 1) and soft[0, 0] < 0.7 and soft[0, 2] > 0.1
    assert list(np.argsort(-soft[0])) == [0, 1, 2]
    np.testing.assert_allclose(soft_targets(proba, 1.0), proba)


@pytest.mark.parametrize("layers", [0, 6])
def test_a_student_keeps_fewer_layers_than_the_teacher_and_writes_nothing_else(
        teacher, tmp_path, layers):
    out = tmp_path / "student"
    with pytest.raises(ValueError, match="1 to 5 of the teacher's 6 layers"):
        distill(teacher_dir=teacher, pool_texts=POOL, output_dir=out,
                config=DistillConfig(layers=layers, num_threads=1, device="cpu"))
    assert not out.exists()


def test_an_empty_pool_is_refused(teacher, tmp_path):
    with pytest.raises(ValueError, match="pool is empty"):
        distill(teacher_dir=teacher, pool_texts=["", ""], output_dir=tmp_path / "s",
                config=DistillConfig(num_threads=1, device="cpu"))


@pytest.mark.parametrize("weighting", [True, False])
def test_the_human_labels_weigh_by_class_as_in_training(teacher, tmp_path, monkeypatch,
                                                        weighting):
    import torch.nn.functional as F

    from trainer.data import class_weights

    seen, cross_entropy = [], F.cross_entropy

    def recording(*args, weight=None, **kwargs):
        seen.append(None if weight is None else weight.tolist())
        return cross_entropy(*args, weight=weight, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", recording)
    texts = ["love it", "great", "superb", "fine", "awful", "best ever"]
    labels = ["positive", "positive", "positive", "neutral", "negative", "positive"]
    distill(teacher_dir=teacher, pool_texts=[], output_dir=tmp_path / "s",
            labeled_texts=texts, labels=labels,
            config=DistillConfig(layers=2, max_steps=1, num_threads=1, device="cpu",
                                 class_weighting=weighting))
    assert len(seen) == 1  # one step, one batch holding every label
    if weighting:
        assert seen[0] == pytest.approx(class_weights([LABELS.index(y) for y in labels], 3))
    else:
        assert seen[0] is None
