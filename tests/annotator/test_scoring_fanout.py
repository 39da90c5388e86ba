"""Scoring that scales out: the pool in chunk tasks, the ranking once all chunks are in."""

from unittest import mock

import pytest

from annotator.celery import app
from annotator.models import Item, ModelVersion, Prediction
from annotator.services.ranking import pool_chunk_score, pool_rank, pool_score, pool_score_start
from annotator.tasks import score_pool_task
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
def eager():
    """Tasks run inline where they are enqueued, as with CELERY_TASK_ALWAYS_EAGER."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def _planned_chunks(version, on_commit) -> list[list[int]]:
    """Fan out with the chunk tasks caught instead of run: the chunks, in order."""
    with mock.patch("annotator.tasks.score_chunk_task.delay") as delay, on_commit(execute=True):
        pool_score_start(model_version_id=version.pk)
    return [list(c.args[1]) for c in delay.call_args_list]


def _ranking(project):
    return list(Item.objects.filter(project=project, priority__isnull=False)
                .order_by("-priority").values_list("pk", "queue_reason", "scored_version"))


def test_the_pool_is_planned_as_chunks_of_the_configured_size(project, pool, tiny_model,
                                                             django_capture_on_commit_callbacks):
    version = _version(project, tiny_model)
    chunks = _planned_chunks(version, django_capture_on_commit_callbacks)
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert sorted(i for c in chunks for i in c) == sorted(item.pk for item in pool)


def test_a_chunk_scored_twice_stores_nothing_new(project, pool, tiny_model,
                                                 django_capture_on_commit_callbacks):
    version = _version(project, tiny_model)
    first = _planned_chunks(version, django_capture_on_commit_callbacks)[0]
    assert pool_chunk_score(model_version_id=version.pk, item_ids=first) == {"scored": 5}
    stored = list(Prediction.objects.order_by("pk").values_list("pk", "probabilities"))

    no_model = mock.patch("trainer.predict.load_scorer", side_effect=AssertionError("ran"))
    with no_model:
        again = pool_chunk_score(model_version_id=version.pk, item_ids=first)
    assert again == {"skipped": "chunk already scored"}
    assert list(Prediction.objects.order_by("pk").values_list("pk", "probabilities")) == stored


def test_a_chunk_whose_items_all_have_predictions_runs_no_model(project, pool, tiny_model,
                                                                django_capture_on_commit_callbacks):
    version = _version(project, tiny_model)
    first = _planned_chunks(version, django_capture_on_commit_callbacks)[0]
    Prediction.objects.bulk_create(Prediction(item_id=i, model_version=version, label="neutral",
                                              probabilities=[0.2, 0.5, 0.3], uncertainty=0.8)
                                   for i in first)  # e.g. live monitoring predicted them
    with mock.patch("trainer.predict.load_scorer", side_effect=AssertionError("ran")):
        assert pool_chunk_score(model_version_id=version.pk, item_ids=first) == {"scored": 0}
    assert Prediction.objects.filter(model_version=version).count() == 5


def test_the_ranking_is_written_only_after_the_last_chunk(project, pool, tiny_model,
                                                          django_capture_on_commit_callbacks):
    version = _version(project, tiny_model)
    chunks = _planned_chunks(version, django_capture_on_commit_callbacks)
    with mock.patch("annotator.tasks.rank_pool_task.delay") as rank:
        for chunk in chunks[:-1]:
            with django_capture_on_commit_callbacks(execute=True):
                assert "last" not in pool_chunk_score(model_version_id=version.pk,
                                                      item_ids=chunk)
            assert "skipped" in pool_rank(model_version_id=version.pk)  # too early
            assert _ranking(project) == []
        rank.assert_not_called()
        with django_capture_on_commit_callbacks(execute=True):
            assert pool_chunk_score(model_version_id=version.pk, item_ids=chunks[-1])["last"]
        rank.assert_called_once_with(version.pk)
    assert pool_rank(model_version_id=version.pk)["ranked"] == len(pool)
    assert len(_ranking(project)) == len(pool)
    assert pool_rank(model_version_id=version.pk) == {"skipped": "already scored"}


def test_a_version_deactivated_midway_writes_no_ranking(project, pool, tiny_model,
                                                        django_capture_on_commit_callbacks):
    version = _version(project, tiny_model)
    chunks = _planned_chunks(version, django_capture_on_commit_callbacks)
    pool_chunk_score(model_version_id=version.pk, item_ids=chunks[0])
    ModelVersion.objects.filter(pk=version.pk).update(is_active=False)  # a newer one came

    with mock.patch("trainer.predict.load_scorer", side_effect=AssertionError("ran")):
        for chunk in chunks[1:]:
            assert pool_chunk_score(model_version_id=version.pk, item_ids=chunk) == {
                "skipped": "not the active version"}
    assert pool_rank(model_version_id=version.pk) == {"skipped": "not the active version"}
    assert Prediction.objects.filter(model_version=version).count() == 5
    assert _ranking(project) == []


def test_the_fanned_out_task_path_ranks_as_the_single_chunk_path(
    project, pool, tiny_model, settings, eager, django_capture_on_commit_callbacks, monkeypatch
):
    # fp32 PyTorch: int8 ONNX quantizes activations per batch, so its scores move a little
    # with what else is in the batch; the chunking itself must change nothing
    monkeypatch.setenv("ANNOTATOR_INFERENCE", "torch")
    settings.SCORING_CHUNK_SIZE = 10_000  # the whole pool in one chunk: the one-task path
    single = _version(project, tiny_model, 1)
    assert pool_score(model_version_id=single.pk)["ranked"] == len(pool)
    expected = [(pk, reason) for pk, reason, _ in _ranking(project)]
    expected_proba = dict(Prediction.objects.filter(model_version=single)
                          .values_list("item_id", "probabilities"))

    settings.SCORING_CHUNK_SIZE = 5
    fanned = _version(project, tiny_model, 2)  # the same weights
    with django_capture_on_commit_callbacks(execute=True):
        result = score_pool_task.delay(fanned.pk).get()
    assert result == {"chunks": 3, "items": len(pool)}
    assert [(pk, reason) for pk, reason, _ in _ranking(project)] == expected
    assert {v for _, _, v in _ranking(project)} == {fanned.pk}
    proba = dict(Prediction.objects.filter(model_version=fanned)
                 .values_list("item_id", "probabilities"))
    assert proba.keys() == expected_proba.keys()
    for item_id, probs in proba.items():
        assert probs == pytest.approx(expected_proba[item_id], abs=1e-5)


def test_diverse_batches_read_the_embeddings_every_chunk_stored(project, pool, tiny_model):
    project.diverse_batches = True
    project.save()
    version = _version(project, tiny_model)
    assert pool_score(model_version_id=version.pk, queue_size=4)["ranked"] == 4
    priorities = Item.objects.exclude(priority=None).values_list("priority", flat=True)
    assert sorted(priorities) == [1.0, 2.0, 3.0, 4.0]


def test_scoring_again_resumes_an_interrupted_fan_out(project, pool, tiny_model,
                                                      django_capture_on_commit_callbacks):
    version = _version(project, tiny_model)
    chunks = _planned_chunks(version, django_capture_on_commit_callbacks)
    pool_chunk_score(model_version_id=version.pk, item_ids=chunks[0])  # the rest were lost
    assert _planned_chunks(version, django_capture_on_commit_callbacks) == chunks[1:]
    result = pool_score(model_version_id=version.pk)
    assert result["scored"] == 7 and result["ranked"] == len(pool)
