"""The active-learning loop on the platform: score the pool, rank the queue, serve, record."""

import multiprocessing
import shutil
from collections import Counter
from unittest import mock

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.db import connection

from annotator.models import Annotation, Item, Membership, ModelVersion, Prediction
from annotator.selectors.queue import suggestion_for
from annotator.selectors.training import stale_ranked_count, stopping_signal_for
from annotator.services import ranking
from annotator.services.labeling import annotation_submit, item_lease_claim, item_next_claim
from annotator.services.ranking import pool_score, pool_seed
from annotator.services.training import model_version_activate
from tests.annotator.labeling_factories import make_item, make_items
from tests.trainer.tiny import LABELS

POOL_TEXTS = [
    "love it, perfect fit", "terrible, fell apart", "it is fine I guess", "arrived today",
    "great color but runs small", "awful stitching", "nice enough", "best dress ever",
    "returned it", "okay for the price", "soft fabric, weird cut", "so comfy",
]


def _version(project, model_dir, number=1) -> ModelVersion:
    """Store the model folder as version `number` of project and make it the active one."""
    path = f"tests-al/{project.pk}/v{number}"
    shutil.copytree(model_dir, storages["artifacts"].path(path), dirs_exist_ok=True)
    ModelVersion.objects.filter(project=project, is_active=True).update(is_active=False)
    return ModelVersion.objects.create(
        project=project, version=number, base_model="tiny", artifact_path=path,
        label_names=LABELS, is_active=True, max_length=16,
    )


def _label(labeler, item, label):
    """Lease `item` to `labeler` (as if served) and submit the label."""
    served = item_lease_claim(labeler=labeler, candidates=Item.objects.filter(pk=item.pk),
                              lease_seconds=600)
    return annotation_submit(labeler=labeler, item=served, label=label)


@pytest.fixture
def pool(project):
    project.random_share = 0.0
    project.uncertainty_after_labels = 0
    project.save()
    return [make_item(project, text, random_key=i / 100) for i, text in enumerate(POOL_TEXTS)]


def test_the_next_item_served_is_the_most_uncertain(project, labeler, pool, tiny_model):
    version = _version(project, tiny_model)
    result = pool_score(model_version_id=version.pk)
    assert result["ranked"] == len(pool)
    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == len(pool)
    most_uncertain = max(predictions, key=lambda p: p.uncertainty)

    served = item_next_claim(labeler=labeler, project=project)
    assert served.pk == most_uncertain.item_id
    assert served.queue_reason == "uncertainty"
    assert served.scored_version_id == version.pk
    ranked = Item.objects.filter(project=project).order_by("-priority")
    uncertainty = dict(predictions.values_list("item_id", "uncertainty"))
    assert [uncertainty[i.pk] for i in ranked] == sorted(uncertainty.values(), reverse=True)


def test_a_model_trained_on_too_few_labels_ranks_the_queue_at_random(project, pool, tiny_model):
    project.uncertainty_after_labels = 200
    project.save()
    version = _version(project, tiny_model)
    version.label_count = 120
    version.save()
    result = pool_score(model_version_id=version.pk)
    assert result["ranked"] == len(pool)
    reasons = set(Item.objects.filter(project=project).values_list("queue_reason", flat=True))
    assert reasons == {"random"}
    assert Prediction.objects.filter(model_version=version).count() == len(pool)


def test_scoring_the_same_version_again_changes_nothing(project, pool, tiny_model):
    version = _version(project, tiny_model)
    pool_score(model_version_id=version.pk)
    before = list(Item.objects.order_by("pk").values_list("pk", "priority", "queue_reason"))
    assert pool_score(model_version_id=version.pk) == {"skipped": "already scored"}
    after = list(Item.objects.order_by("pk").values_list("pk", "priority", "queue_reason"))
    assert after == before
    assert Prediction.objects.filter(model_version=version).count() == len(pool)


def test_a_new_version_flags_old_ranks_stale_and_its_scoring_replaces_them(
    project, pool, tiny_model
):
    old = _version(project, tiny_model, 1)
    pool_score(model_version_id=old.pk)
    new = _version(project, tiny_model, 2)
    assert stale_ranked_count(project) == len(pool)
    assert pool_score(model_version_id=old.pk) == {"skipped": "not the active version"}

    pool_score(model_version_id=new.pk)
    assert stale_ranked_count(project) == 0
    ranked = Item.objects.filter(project=project, priority__isnull=False)
    assert set(ranked.values_list("scored_version", flat=True)) == {new.pk}


def test_rolling_back_re_ranks_the_queue_from_the_stored_predictions(
    project, labeler, pool, tiny_model, django_capture_on_commit_callbacks
):
    old = _version(project, tiny_model, 1)
    pool_score(model_version_id=old.pk)
    new = _version(project, tiny_model, 2)
    pool_score(model_version_id=new.pk)
    assert stale_ranked_count(project) == 0

    no_model = mock.patch("trainer.predict.load_scorer", side_effect=AssertionError("ran"))
    score_now = mock.patch("annotator.tasks.score_pool_task.delay",
                           side_effect=lambda pk: pool_score(model_version_id=pk))
    with no_model, score_now, django_capture_on_commit_callbacks(execute=True):
        model_version_activate(version=old)
    assert stale_ranked_count(project) == 0
    ranked = Item.objects.filter(project=project, priority__isnull=False)
    assert ranked.count() == len(pool)
    assert set(ranked.values_list("scored_version", flat=True)) == {old.pk}
    uncertainty = dict(Prediction.objects.filter(model_version=old)
                       .values_list("item_id", "uncertainty"))
    assert [uncertainty[i.pk] for i in ranked.order_by("-priority")] == sorted(
        uncertainty.values(), reverse=True)

    served = item_next_claim(labeler=labeler, project=project)
    annotation, _ = annotation_submit(labeler=labeler, item=served, label="neutral")
    assert annotation.model_version_id == old.pk
    assert annotation.predicted_label == Prediction.objects.get(item=served,
                                                                model_version=old).label
    before = list(Item.objects.order_by("pk").values_list("pk", "priority", "scored_version"))
    assert pool_score(model_version_id=old.pk) == {"skipped": "already scored"}
    assert list(Item.objects.order_by("pk").values_list("pk", "priority", "scored_version")) \
        == before


def test_a_new_versions_ranking_leaves_no_item_pointing_at_the_old_version(
    project, labeler, pool, tiny_model
):
    old = _version(project, tiny_model, 1)
    pool_score(model_version_id=old.pk)
    new = _version(project, tiny_model, 2)
    assert pool_score(model_version_id=new.pk, queue_size=4)["ranked"] == 4
    versions = set(Item.objects.filter(project=project).values_list("scored_version", flat=True))
    assert versions == {new.pk, None}
    unranked = Item.objects.filter(project=project, priority__isnull=True).first()
    annotation, _ = _label(labeler, unranked, "neutral")
    assert annotation.model_version_id == new.pk  # its prediction, not the old ranking


def test_labeled_items_are_not_ranked_and_the_candidate_sample_is_bounded(
    project, labeler, pool, tiny_model
):
    _label(labeler, pool[0], "positive")
    project.candidate_pool_size = 5
    project.save()
    version = _version(project, tiny_model)
    assert pool_score(model_version_id=version.pk)["ranked"] == 5
    ranked = Item.objects.filter(project=project, priority__isnull=False)
    assert ranked.count() == 5
    assert pool[0].pk not in set(ranked.values_list("pk", flat=True))


def test_random_control_picks_are_recorded_in_provenance(project, labeler, pool, tiny_model):
    project.random_share = 0.5
    project.save()
    version = _version(project, tiny_model)
    pool_score(model_version_id=version.pk)
    reasons = Counter(Item.objects.filter(project=project).values_list("queue_reason", flat=True))
    assert reasons == {"uncertainty": 6, "random_control": 6}

    control = Item.objects.filter(project=project, queue_reason="random_control").first()
    annotation, _ = _label(labeler, control, "neutral")
    prediction = Prediction.objects.get(item=control, model_version=version)
    assert annotation.picked_by == Annotation.Picked.RANDOM_CONTROL
    assert annotation.strategy == "margin"
    assert annotation.model_version_id == version.pk
    assert annotation.predicted_label == prediction.label
    assert annotation.predicted_confidence == pytest.approx(max(prediction.probabilities))


def test_diverse_batches_rank_every_candidate_once(project, pool, tiny_model):
    project.diverse_batches = True
    project.save()
    version = _version(project, tiny_model)
    assert pool_score(model_version_id=version.pk, queue_size=4)["ranked"] == 4
    priorities = Item.objects.exclude(priority=None).values_list("priority", flat=True)
    assert sorted(priorities) == [1.0, 2.0, 3.0, 4.0]


def test_suggestions_are_hidden_unless_the_admin_turns_them_on(project, pool, tiny_model):
    version = _version(project, tiny_model)
    pool_score(model_version_id=version.pk)
    item = Item.objects.get(pk=pool[0].pk)
    assert suggestion_for(item) is None
    project.show_suggestions = True
    project.save()
    item = Item.objects.select_related("project").get(pk=pool[0].pk)
    label, confidence = suggestion_for(item)
    assert label in LABELS and 1 / 3 <= confidence <= 1


def test_stopping_signal_appears_once_versions_have_predictions(project, pool, tiny_model):
    assert stopping_signal_for(project) is None
    for number in (1, 2):
        pool_score(model_version_id=_version(project, tiny_model, number).pk)
    signal = stopping_signal_for(project)
    assert signal.kappas == [1.0]  # same weights twice: identical predictions
    assert not signal.stop and "need" in signal.reason


def test_activating_a_version_enqueues_scoring(project, tiny_model):
    from annotator.services.training import on_model_activated

    version = _version(project, tiny_model)
    with mock.patch("annotator.tasks.score_pool_task.delay") as delay:
        on_model_activated(version)
    delay.assert_called_once_with(version.pk)


def test_cold_start_seeds_the_queue_before_the_first_model(project, labeler, pool, tiny_model):
    assert pool_seed(project_id=project.pk, size=3) == {"seeded": 3}
    seeds = Item.objects.filter(project=project, queue_reason="seed")
    assert seeds.count() == 3
    served = item_next_claim(labeler=labeler, project=project)
    assert served.queue_reason == "seed"
    annotation, _ = annotation_submit(labeler=labeler, item=served, label="positive")
    assert annotation.picked_by == Annotation.Picked.SEED

    version = _version(project, tiny_model)
    assert "skipped" in pool_seed(project_id=project.pk)
    pool_score(model_version_id=version.pk)
    assert not Item.objects.filter(project=project, queue_reason="seed").exists()


def test_seeding_embeds_a_sample_of_a_big_pool(project, pool, monkeypatch):
    embedded = []

    def embed(texts, **_kwargs):
        embedded.append(len(texts))
        return np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)

    monkeypatch.setattr("trainer.predict.embed_with_base", embed)
    monkeypatch.setattr(ranking, "SEED_CANDIDATES", 5)
    assert pool_seed(project_id=project.pk, size=3) == {"seeded": 3}
    assert embedded == [5]


def test_seeding_asked_for_again_before_it_starts_is_queued_once(project, monkeypatch):
    sent = []
    monkeypatch.setattr("annotator.services.ranking.enqueue", lambda *args: sent.append(args))
    for _ in range(4):  # four pushes during one import
        ranking.seeding_request(project.pk)
    assert sent == [("annotator.tasks.seed_pool_task", project.pk)]
    ranking.seeding_started(project.pk)  # items arriving now need another run
    ranking.seeding_request(project.pk)
    assert len(sent) == 2


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_labelers_on_a_ranked_queue_never_share_an_item(project):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")
    items = make_items(project, 150)
    for rank, item in enumerate(items):  # a ranked queue: everyone wants the same top rows
        item.priority, item.queue_reason = float(rank), "uncertainty"
    Item.objects.bulk_update(items, ["priority", "queue_reason"])
    users = []
    for i in range(12):
        user = get_user_model().objects.create_user(f"ranked{i}")
        Membership.objects.create(project=project, user=user)
        users.append(user)
    s = connection.settings_dict
    url = f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"
    from tests.annotator import lease_worker

    batches = [[u.pk for u in users[i::4]] for i in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as workers:
        results = workers.starmap(lease_worker.run, [(url, b, project.pk) for b in batches])
    submits = [pair for result in results for pair in result]
    per_item = Counter(item_id for _, item_id in submits)
    assert set(per_item) == {item.pk for item in items}
    assert set(per_item.values()) == {1}
    picked = set(Annotation.objects.values_list("picked_by", flat=True))
    assert picked == {"uncertainty"}


def test_scoring_reads_texts_at_the_versions_max_length(project, pool, tiny_model, monkeypatch):
    import trainer.predict

    seen, real = [], trainer.predict.predict_and_embed
    monkeypatch.setattr(trainer.predict, "predict_and_embed",
                        lambda *a, **kw: seen.append(kw["max_length"]) or real(*a, **kw))
    project.max_length = 999
    project.save()
    pool_score(model_version_id=_version(project, tiny_model).pk)
    assert seen == [16]
