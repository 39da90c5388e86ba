import random
from collections import Counter

import pytest

from trainer.data import bucketed_batches, class_weights, encode_labels, split_train_val


def test_labels_encode_from_names_or_indices():
    assert encode_labels(["pos", "neg", 0], ["neg", "pos"]) == [1, 0, 0]
    with pytest.raises(KeyError):
        encode_labels(["maybe"], ["neg", "pos"])


def test_validation_split_is_stratified_and_disjoint():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    train, val = split_train_val(labels, 0.1, seed=1)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(100))
    assert Counter(labels[i] for i in val) == {0: 5, 1: 3, 2: 2}


def test_validation_split_keeps_at_least_one_training_example_per_class():
    labels = [0, 0, 1, 1, 2, 2, 2, 2, 2, 2]
    train, val = split_train_val(labels, 0.3, seed=3)
    assert {labels[i] for i in train} == {0, 1, 2}


def test_no_validation_split_when_disabled_or_too_small():
    assert split_train_val([0, 1, 0, 1], 0.0, seed=1) == ([0, 1, 2, 3], [])
    assert split_train_val([0, 1], 0.1, seed=1) == ([0, 1], [])


def test_class_weights_favour_rare_classes():
    weights = class_weights([0, 0, 0, 1], num_labels=3)
    assert weights[1] == pytest.approx(3 * weights[0])
    assert weights[2] == 1.0  # absent class: neutral weight


def test_class_weight_power_softens_the_weights():
    full = class_weights([0, 0, 0, 1], num_labels=2)
    soft = class_weights([0, 0, 0, 1], num_labels=2, power=0.5)
    assert soft == pytest.approx([w ** 0.5 for w in full])
    assert soft[1] / soft[0] < full[1] / full[0]


def test_bucketed_batches_cover_every_index_once_with_similar_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(3, 300) for _ in range(1000)]
    batches = bucketed_batches(lengths, 16, random.Random(1), chunk_batches=10)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))
    assert all(len(b) <= 16 for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 40  # unsorted batches would spread over ~250 tokens


def test_per_model_defaults_apply_unless_a_value_is_given():
    from trainer.config import GENERAL_DEFAULTS, MODEL_DEFAULTS, TrainConfig

    e5, minilm = MODEL_DEFAULTS["multilingual-e5-small"], MODEL_DEFAULTS["all-MiniLM-L6-v2"]
    default = TrainConfig()  # model_name "" = the default model, multilingual-e5-small
    assert default.resolved("learning_rate") == e5["learning_rate"]
    assert default.resolved("layer_lr_decay") == e5["layer_lr_decay"] < 1
    assert default.resolved("freeze_word_embeddings") is True
    assert default.to_dict()["learning_rate"] == e5["learning_rate"]
    english = TrainConfig(model_name="all-MiniLM-L6-v2")
    assert english.resolved("learning_rate") == minilm["learning_rate"]
    assert english.resolved("max_length") == 128 and default.resolved("max_length") is None
    assert english.resolved("layer_lr_decay") == 1.0
    other = TrainConfig(model_name="bert-base-uncased")
    assert {key: other.resolved(key) for key in GENERAL_DEFAULTS} == GENERAL_DEFAULTS
    explicit = TrainConfig(learning_rate=1e-5, freeze_word_embeddings=False, layer_lr_decay=1.0)
    assert (explicit.resolved("learning_rate"), explicit.resolved("freeze_word_embeddings"),
            explicit.resolved("layer_lr_decay")) == (1e-5, False, 1.0)


def test_a_fitted_max_length_holds_95_percent_of_the_texts_in_steps_of_32_up_to_256():
    from trainer.data import fitting_max_length

    assert fitting_max_length([10] * 95 + [300] * 5) == 32
    assert fitting_max_length([10] * 90 + [100] * 10) == 128
    assert fitting_max_length(list(range(1, 201))) == 192  # the 190th of 200 is 190 tokens
    assert fitting_max_length([1000] * 10) == 256 and fitting_max_length([1000], cap=128) == 128
    assert fitting_max_length([]) == 128
