"""A scoring worker killed mid-chunk: its task is not handed out again before the broker's
visibility timeout (hours), so the beat's sweep enqueues the scoring again once it stalled."""

from unittest import mock

import pytest

from annotator.models import Item, Prediction
from annotator.services.ranking import (
    clear_ranks,
    pool_chunk_score,
    pool_score_start,
    pool_scorings_resume,
)
from annotator.tasks import resume_scoring_task
from tests.annotator.labeling_factories import make_item
from tests.annotator.test_active_queue import POOL_TEXTS, _version


@pytest.fixture
def pool(project, settings):
    settings.SCORING_CHUNK_SIZE = 5  # 12 items: chunks of 5, 5 and 2
    project.random_share = 0.0
    project.uncertainty_after_labels = 0
    project.save()
    return [make_item(project, text, random_key=i / 100) for i, text in enumerate(POOL_TEXTS)]


@pytest.fixture
def killed_after_one_chunk(project, pool, tiny_model, django_capture_on_commit_callbacks):
    """A version whose scoring was planned and whose worker died after the first chunk: the
    other chunk tasks are lost. Returns the version."""
    version = _version(project, tiny_model)
    with mock.patch("annotator.tasks.score_chunk_task.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        pool_score_start(model_version_id=version.pk)
    first = list(delay.call_args_list[0].args[1])
    assert pool_chunk_score(model_version_id=version.pk, item_ids=first) == {"scored": 5}
    return version


def _sweep(on_commit) -> tuple[list[int], list[int]]:
    """The sweep, with the score_pool_task it enqueues caught: (versions resumed, enqueued)."""
    with mock.patch("annotator.tasks.score_pool_task.delay") as delay, on_commit(execute=True):
        resumed = pool_scorings_resume()
    return resumed, [c.args[0] for c in delay.call_args_list]


def test_a_stalled_scoring_is_enqueued_again_and_finishes_with_nothing_twice(
    project, pool, killed_after_one_chunk, settings, django_capture_on_commit_callbacks
):
    version = killed_after_one_chunk
    settings.SCORING_STALE_SECONDS = 0
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])  # first look: the clock starts
    assert _sweep(django_capture_on_commit_callbacks) == ([version.pk], [version.pk])

    with mock.patch("annotator.tasks.score_chunk_task.delay", side_effect=lambda v, ids:
                    pool_chunk_score(model_version_id=v, item_ids=ids)), \
            mock.patch("annotator.tasks.rank_pool_task.delay") as rank, \
            django_capture_on_commit_callbacks(execute=True):
        assert pool_score_start(model_version_id=version.pk)["chunks"] == 2  # the lost ones
    rank.assert_called_with(version.pk)
    predicted = list(Prediction.objects.filter(model_version=version)
                     .values_list("item_id", flat=True))
    assert sorted(predicted) == sorted(item.pk for item in pool)  # each item once


def test_a_scoring_that_moves_is_not_enqueued_again(
    project, pool, killed_after_one_chunk, settings, django_capture_on_commit_callbacks
):
    version = killed_after_one_chunk
    settings.SCORING_STALE_SECONDS = 3600
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])
    settings.SCORING_STALE_SECONDS = 0
    second = list(Item.objects.filter(project=project).order_by("pk")
                  .values_list("pk", flat=True)[5:10])
    pool_chunk_score(model_version_id=version.pk, item_ids=second)  # a chunk finished since
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])


def test_a_resumed_scoring_is_not_enqueued_again_within_the_period(
    project, pool, killed_after_one_chunk, settings, django_capture_on_commit_callbacks
):
    settings.SCORING_STALE_SECONDS = 0
    _sweep(django_capture_on_commit_callbacks)
    assert _sweep(django_capture_on_commit_callbacks)[0] == [killed_after_one_chunk.pk]
    settings.SCORING_STALE_SECONDS = 3600
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])


def test_a_finished_scoring_reranked_by_the_fast_loop_is_left_alone(
    project, pool, tiny_model, settings, django_capture_on_commit_callbacks
):
    from annotator.services.ranking import pool_score

    version = _version(project, tiny_model)
    pool_score(model_version_id=version.pk)
    clear_ranks(project)  # as a head re-rank does: the version no longer ranks the queue
    settings.SCORING_STALE_SECONDS = 0
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])


def test_a_version_whose_scoring_never_started_is_enqueued_once_stale(
    project, pool, tiny_model, settings, django_capture_on_commit_callbacks
):
    version = _version(project, tiny_model)  # its score_pool_task was lost before the plan
    settings.SCORING_STALE_SECONDS = 0
    assert _sweep(django_capture_on_commit_callbacks) == ([], [])
    assert _sweep(django_capture_on_commit_callbacks) == ([version.pk], [version.pk])


def test_the_beat_task_runs_the_sweep(db):
    with mock.patch("annotator.services.ranking.pool_scorings_resume", return_value=[7]):
        assert resume_scoring_task() == [7]
