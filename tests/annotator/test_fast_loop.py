"""The fast loop: pool embeddings once per encoder, a head refit and re-rank every few labels."""

from unittest import mock

import pytest

from annotator.models import Annotation, HeadFit, Item
from annotator.services.fast_loop import head_rerank, label_recorded
from annotator.services.labeling import annotation_submit, item_next_claim
from annotator.services.pool_embeddings import (
    embeddings_load,
    encoder_key,
    missing_ids,
    pool_embed_chunk,
    pool_embed_start,
)
from tests.annotator.fake_encoder import axis_embeddings
from tests.annotator.labeling_factories import make_item

WORDS = {"negative": "awful", "neutral": "okay", "positive": "lovely"}


def _fake_embed(texts, **_):
    """One direction per sentiment word, plus text noise."""
    return axis_embeddings(texts, [(word,) for word in WORDS.values()])


@pytest.fixture(autouse=True)
def fake_encoder(settings, tmp_path):
    from django.core.cache import cache

    cache.clear()  # the pending-chunk and trigger keys of earlier tests
    settings.EMBED_CHUNK_SIZE = 25
    with mock.patch("trainer.predict.embed_with_base", side_effect=_fake_embed) as embed:
        yield embed


@pytest.fixture
def pool(project):
    project.random_share = 0.0
    project.fast_loop_every = 5
    project.save()
    texts = [f"{word} item {i}" for i in range(20) for word in WORDS.values()]
    return [make_item(project, text, random_key=i / 100) for i, text in enumerate(texts)]


@pytest.fixture
def skewed_pool(project):
    """Mostly positive, as a shop's reviews are: the head predicts two classes rarely."""
    project.random_share = 0.0
    project.fast_loop_every = 5
    project.save()
    counts = {"negative": 20, "neutral": 20, "positive": 120}
    texts = [f"{WORDS[label]} item {i}" for label, n in counts.items() for i in range(n)]
    return [make_item(project, text, random_key=(i * 37 % 160) / 160)
            for i, text in enumerate(texts)]


def _embed_all(project, on_commit):
    with mock.patch("annotator.tasks.embed_chunk_task.delay") as delay, on_commit(execute=True):
        result = pool_embed_start(project_id=project.pk)
    for call in delay.call_args_list:
        pool_embed_chunk(project_id=call.args[0], key=call.args[1], item_ids=call.args[2])
    return result


def _label(project, items, labeler, on_commit):
    """Label items through the real submit path (lease, then submit)."""
    for item in items:
        Item.objects.filter(pk=item.pk).update(leased_to=labeler,
                                               lease_expires_at="2999-01-01T00:00:00Z")
        item.refresh_from_db()
        word = next(w for w in WORDS.values() if w in item.text)
        label = next(name for name, w in WORDS.items() if w == word)
        annotation_submit(labeler=labeler, item=item, label=label)


def test_the_pool_is_embedded_once_in_chunks(project, pool, fake_encoder,
                                             django_capture_on_commit_callbacks):
    assert _embed_all(project, django_capture_on_commit_callbacks) == {"chunks": 3, "items": 60}
    ids, x = embeddings_load(project)
    assert sorted(ids.tolist()) == sorted(i.pk for i in pool) and x.shape == (60, 16)
    assert missing_ids(project) == []
    calls = fake_encoder.call_count
    assert _embed_all(project, django_capture_on_commit_callbacks) == {"chunks": 0, "items": 0}
    first = sorted(i.pk for i in pool)[:25]
    assert pool_embed_chunk(project_id=project.pk, key=encoder_key(project),
                            item_ids=first) == {"skipped": "chunk already embedded"}
    assert fake_encoder.call_count == calls


def test_new_items_are_embedded_and_a_new_encoder_starts_a_new_store(
        project, pool, django_capture_on_commit_callbacks):
    _embed_all(project, django_capture_on_commit_callbacks)
    late = make_item(project, "lovely late arrival")
    assert missing_ids(project) == [late.pk]
    _embed_all(project, django_capture_on_commit_callbacks)
    assert late.pk in embeddings_load(project)[0]
    old_key = encoder_key(project)
    project.model_name = "all-MiniLM-L6-v2"
    project.save()
    assert encoder_key(project) != old_key and len(missing_ids(project)) == 61
    stale = pool_embed_chunk(project_id=project.pk, key=old_key, item_ids=[late.pk])
    assert "skipped" in stale


def test_cold_start_spreads_then_the_head_ranks_by_uncertainty(
        project, pool, labeler, django_capture_on_commit_callbacks):
    project.model_name = "all-MiniLM-L6-v2"  # an encoder the zero-shot cold start skips
    project.save()
    _embed_all(project, django_capture_on_commit_callbacks)
    first = head_rerank(project_id=project.pk, force=True)
    assert first["strategy"] == "embedding_kmeans" and first["labels"] == 0
    ranked = Item.objects.filter(project=project, priority__isnull=False)
    assert ranked.count() == first["ranked"] and set(ranked.values_list(
        "queue_reason", flat=True)) == {"diversity"}
    fits = []
    for _ in range(6):
        top = list(Item.objects.filter(project=project, priority__isnull=False,
                                       annotation_count=0).order_by("-priority")[:5])
        _label(project, top, labeler, django_capture_on_commit_callbacks)
        fits.append(head_rerank(project_id=project.pk))
    trusted = [f for f in fits if f.get("strategy") == "balanced_ties+class_sample"]  # default
    assert trusted, fits  # consecutive heads agreed: uncertainty took over
    fit = HeadFit.objects.filter(project=project).first()
    assert fit.trusted and fit.labels == 30 and fit.kappa is None
    assert HeadFit.objects.filter(project=project, kappa__gte=0.8).exists()
    queue = list(Item.objects.filter(project=project, priority__isnull=False)
                 .order_by("-priority").values_list("queue_reason", flat=True))
    assert set(queue) == {"uncertainty", "class_sample"}  # the two spread through the queue
    # even classes: half the project's share (trainer.strategies.class_sample_share)
    assert abs(queue.count("class_sample") - len(queue) / 4) <= 1
    assert "class_sample" in queue[:5]


def test_on_skewed_classes_the_whole_share_of_the_trusted_queue_are_class_samples(
        project, skewed_pool, labeler, django_capture_on_commit_callbacks):
    queue = _trusted_queue(project, labeler, django_capture_on_commit_callbacks)
    assert HeadFit.objects.filter(project=project).first().strategy == \
        "balanced_ties+class_sample"
    reasons = [item.queue_reason for item in queue]
    assert set(reasons) == {"uncertainty", "class_sample"}  # the two spread through the queue
    assert abs(reasons.count("class_sample") - len(reasons) / 2) <= 1
    assert set(reasons[:4]) == {"uncertainty", "class_sample"}


def _trusted_queue(project, labeler, on_commit) -> list[Item]:
    project.model_name = "all-MiniLM-L6-v2"  # k-means cold start: kappa decides, no blend
    project.save()
    _embed_all(project, on_commit)
    head_rerank(project_id=project.pk, force=True)
    for _ in range(6):
        top = list(Item.objects.filter(project=project, priority__isnull=False,
                                       annotation_count=0).order_by("-priority")[:5])
        _label(project, top, labeler, on_commit)
        head_rerank(project_id=project.pk)
    assert HeadFit.objects.filter(project=project).first().trusted
    return list(Item.objects.filter(project=project, priority__isnull=False)
                .order_by("-priority"))


def test_class_samples_cover_every_predicted_class_and_carry_their_provenance(
        project, pool, labeler, django_capture_on_commit_callbacks):
    queue = _trusted_queue(project, labeler, django_capture_on_commit_callbacks)
    samples = [item for item in queue if item.queue_reason == "class_sample"]
    assert {item.head_label for item in samples} == set(WORDS)  # every class takes turns
    assert not {item.pk for item in samples} & {item.pk for item in queue
                                                if item.queue_reason != "class_sample"}
    for _ in range(3):  # the first or the second item is a class sample
        item = item_next_claim(labeler=labeler, project=project)
        annotation, _ = annotation_submit(labeler=labeler, item=item, label="neutral")
        if item.queue_reason == "class_sample":
            break
    assert annotation.picked_by == Annotation.Picked.CLASS_SAMPLE
    assert annotation.strategy == "balanced_ties" and annotation.ranked_by_head_id


def test_a_class_sample_share_of_zero_ranks_by_uncertainty_only(
        project, pool, labeler, django_capture_on_commit_callbacks):
    project.class_sample_share = 0.0
    queue = _trusted_queue(project, labeler, django_capture_on_commit_callbacks)
    assert {item.queue_reason for item in queue} == {"uncertainty"}
    assert HeadFit.objects.filter(project=project).first().strategy == "balanced_ties"


def test_too_few_new_labels_skip_and_force_refits(project, pool, labeler,
                                                  django_capture_on_commit_callbacks):
    _embed_all(project, django_capture_on_commit_callbacks)
    head_rerank(project_id=project.pk, force=True)
    _label(project, pool[:3], labeler, django_capture_on_commit_callbacks)
    assert "skipped" in head_rerank(project_id=project.pk)
    assert head_rerank(project_id=project.pk, force=True)["labels"] == 3


def test_provenance_names_the_head_fit_that_ranked_the_item(
        project, pool, labeler, django_capture_on_commit_callbacks):
    project.model_name = "all-MiniLM-L6-v2"  # an encoder the zero-shot cold start skips
    project.save()
    _embed_all(project, django_capture_on_commit_callbacks)
    result = head_rerank(project_id=project.pk, force=True)
    item = item_next_claim(labeler=labeler, project=project)
    assert item.ranked_by_head_id == result["fit"]
    annotation, _ = annotation_submit(labeler=labeler, item=item, label="neutral")
    assert annotation.ranked_by_head_id == result["fit"]
    assert annotation.picked_by == Annotation.Picked.DIVERSITY
    assert annotation.strategy == "cold_start_diversity"


def test_labeled_and_leased_elsewhere_items_are_not_ranked_again(
        project, pool, labeler, django_capture_on_commit_callbacks):
    _embed_all(project, django_capture_on_commit_callbacks)
    _label(project, pool[:10], labeler, django_capture_on_commit_callbacks)
    head_rerank(project_id=project.pk, force=True)
    ranked = set(Item.objects.filter(project=project, priority__isnull=False)
                 .values_list("pk", flat=True))
    assert ranked and not ranked & {i.pk for i in pool[:10]}


def test_off_or_unembedded_projects_do_nothing(project, pool, django_capture_on_commit_callbacks):
    with mock.patch("annotator.tasks.embed_chunk_task.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        assert "no embeddings" in head_rerank(project_id=project.pk, force=True)["skipped"]
    assert delay.call_count == 3  # and it asked for them
    project.fast_loop_every = 0
    project.save()
    assert "off" in head_rerank(project_id=project.pk, force=True)["skipped"]


def test_self_training_is_recorded_and_never_stored_as_labels(
        project, pool, labeler, django_capture_on_commit_callbacks):
    project.self_training = True
    project.save()
    _embed_all(project, django_capture_on_commit_callbacks)
    _label(project, pool[:9], labeler, django_capture_on_commit_callbacks)
    head_rerank(project_id=project.pk, force=True)
    assert HeadFit.objects.filter(project=project).first().pseudo_labels > 0
    assert Annotation.objects.filter(item__project=project).count() == 9


def test_a_submitted_label_asks_for_a_rerank_at_most_once_per_window(
        project, pool, labeler, settings, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    cache.clear()
    with mock.patch("annotator.tasks.head_rerank_task.apply_async") as send, \
            django_capture_on_commit_callbacks(execute=True):
        _label(project, pool[:4], labeler, django_capture_on_commit_callbacks)
    assert send.call_count == 1
    # it runs once the window has closed: the labels made while it was open (which ask for
    # nothing) are counted, also the last ones before everybody stops
    assert send.call_args.args == ((project.pk, False),)
    assert send.call_args.kwargs["countdown"] > settings.FAST_LOOP_THROTTLE_SECONDS
    cache.clear()
    project.fast_loop_every = 0
    with mock.patch("annotator.tasks.head_rerank_task.apply_async") as send, \
            django_capture_on_commit_callbacks(execute=True):
        label_recorded(project)
    assert send.call_count == 0


def test_a_version_ranking_clears_the_head_provenance(project, pool,
                                                      django_capture_on_commit_callbacks):
    from annotator.services.ranking import clear_ranks

    _embed_all(project, django_capture_on_commit_callbacks)
    head_rerank(project_id=project.pk, force=True)
    clear_ranks(project)
    assert not Item.objects.filter(project=project, ranked_by_head__isnull=False).exists()


def test_a_chunk_file_cut_short_is_skipped_then_embedded_again(
        project, pool, django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    from annotator.services.pool_embeddings import _folder

    first = sorted(i.pk for i in pool)[:25]
    storages["artifacts"].save(f"{_folder(project, encoder_key(project))}/{first[0]}.npz",
                               ContentFile(b"PK\x03\x04 cut short"))
    assert len(embeddings_load(project)[0]) == 0 and len(missing_ids(project)) == 60
    _embed_all(project, django_capture_on_commit_callbacks)
    assert sorted(embeddings_load(project)[0].tolist()) == sorted(i.pk for i in pool)


def test_chunks_waiting_in_the_queue_are_not_enqueued_again(
        project, pool, django_capture_on_commit_callbacks):
    def enqueued():
        with mock.patch("annotator.tasks.embed_chunk_task.delay") as delay, \
                django_capture_on_commit_callbacks(execute=True):
            pool_embed_start(project_id=project.pk)
        return delay.call_count

    assert enqueued() == 3
    assert enqueued() == 0  # a fit asking again while they wait
    from django.core.cache import cache

    cache.clear()  # the pending marks expired: a lost message is sent again
    assert enqueued() == 3


def test_the_head_suggests_for_the_items_it_ranked_and_provenance_records_it(
        project, pool, labeler, django_capture_on_commit_callbacks):
    from annotator.selectors.queue import suggestion_for

    project.show_suggestions = True
    project.cold_start_diversity = False
    project.save()
    _embed_all(project, django_capture_on_commit_callbacks)
    _label(project, pool[:12], labeler, django_capture_on_commit_callbacks)
    head_rerank(project_id=project.pk, force=True)
    item = item_next_claim(labeler=labeler, project=project)
    label, confidence = suggestion_for(item)
    assert label == item.head_label and 0 < confidence <= 1
    word = next(name for name, w in WORDS.items() if w in item.text)
    assert label == word  # the synthetic directions are easy: the head gets them right
    annotation, _ = annotation_submit(labeler=labeler, item=item, label=word)
    assert (annotation.predicted_label, annotation.predicted_confidence) == (
        item.head_label, item.head_confidence)
    from annotator.services.ranking import clear_ranks

    clear_ranks(project)  # a fine-tuned version ranks now: no stale head suggestion
    assert not Item.objects.filter(project=project).exclude(head_label="").exists()
