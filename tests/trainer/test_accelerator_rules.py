"""The rules that apply only on an accelerator, checked where no GPU is: the batch-size rule,
token-budget scoring batches, and the loss read back every N steps instead of every step."""

import math

import pytest
import torch

from trainer.config import TrainConfig
from trainer.predict import token_batches
from trainer.train import _LossLog, accelerator_batch


@pytest.mark.parametrize("n_train, expected", [
    (500, (16, 1.0)), (3199, (16, 1.0)), (3200, (32, math.sqrt(2))), (6400, (64, 2.0)),
    (13409, (128, 2.0)), (1_000_000, (128, 2.0)),
])
def test_big_runs_on_a_gpu_get_bigger_batches_and_a_higher_learning_rate(n_train, expected):
    batch, factor = accelerator_batch(TrainConfig(), n_train, "cuda")
    assert (batch, pytest.approx(factor)) == (expected[0], pytest.approx(expected[1]))
    assert -(-n_train // batch) >= min(100, -(-n_train // 16))  # an epoch keeps >= 100 steps


@pytest.mark.parametrize("config, device", [
    (TrainConfig(), "cpu"),
    (TrainConfig(batch_size=32), "cuda"),  # chosen by hand: kept
    (TrainConfig(accelerator_batching=False), "cuda"),
])
def test_the_recipe_stands_on_cpu_and_where_a_batch_size_was_chosen(config, device):
    assert accelerator_batch(config, 13409, device) == (config.batch_size, 1.0)


def test_token_batches_cover_every_text_once_within_the_budget():
    lengths = sorted([3, 5, 5, 8, 20, 20, 21, 64, 128, 128, 300])
    batches = token_batches(lengths, max_tokens=128, max_batch=4)
    assert batches[0][0] == 0 and batches[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(batches, batches[1:], strict=False))
    for start, stop in batches:
        assert stop - start <= 4
        # padded to its longest; one text alone may exceed the budget (it must go somewhere)
        assert stop - start == 1 or lengths[stop - 1] * (stop - start) <= 128
    assert (10, 11) in batches  # the 300-token text alone


def test_the_loss_is_read_back_once_per_n_steps_and_every_step_is_kept():
    history, reads = [], []
    log = _LossLog(history, sync_every=32)
    original = log.flush

    def counted():
        reads.append(len(log.pending))
        original()

    log.flush = counted
    entries = [log.add(1, step, torch.tensor(float(step))) for step in range(1, 101)]
    log.flush()
    assert [e["step"] for e in history] == list(range(1, 101))
    assert [e["loss"] for e in history] == [float(s) for s in range(1, 101)]
    assert entries[0]["loss"] == 1.0  # the first step is read at once (progress shows a loss)
    assert entries[10]["loss"] == 1.0 and entries[32]["loss"] == 33.0  # later, in batches
    assert len([n for n in reads if n]) == 5  # step 1, three full batches, the rest at the end


def test_on_cpu_every_step_is_read_as_before():
    history = []
    log = _LossLog(history, sync_every=1)
    assert [log.add(1, s, torch.tensor(s / 10))["loss"] for s in (1, 2, 3)] == [
        pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)]
    assert len(history) == 3
