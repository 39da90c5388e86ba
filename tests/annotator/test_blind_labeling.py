"""Blind labeling: a labeler reads only their own labels — never another labeler's label, a
gold label, an adjudication, an imported pre-label or the model's prediction on a gold item —
through the API (token or session) and the pages. Managers see everything."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotator.models import Item, Membership, Prediction
from tests.annotator.labeling_factories import label_as, make_item
from tests.annotator.serving_helpers import add_version, token_client

PASSWORD = "correct horse battery"
OTHER = "bruno-the-other-labeler"   # appears only where someone sees other labelers' labels
GOLD_TEXT = "GOLDMARKER held-out review"
IMPORTED = "pre-labeled-elsewhere"


@pytest.fixture
def scene(project):
    """A pool item labeled by two labelers (they disagree) and adjudicated, an imported
    pre-label, a gold item with its gold label, and predictions of the active version on
    both. Returns (labeler, pool item, gold item)."""
    project.labels = [{"name": "negative"}, {"name": "neutral"}, {"name": "positive"}]
    project.overlap_labelers = 2
    project.save()
    users = get_user_model().objects
    lena = users.create_user("lena", password=PASSWORD)
    bruno = users.create_user(OTHER, password=PASSWORD)
    for user in (lena, bruno):
        Membership.objects.create(project=project, user=user)
    pool = make_item(project, "comfortable shoes", required_labels=2,
                     imported_label=IMPORTED)
    gold = make_item(project, GOLD_TEXT, split=Item.Split.GOLD, gold_label="negative")
    label_as(lena, pool, "positive")
    label_as(bruno, pool, "negative")
    Item.objects.filter(pk=pool.pk).update(final_label="neutral")
    version = add_version(project, 1, active=True)  # a real tiny model: explanations run
    for item in (pool, gold):
        Prediction.objects.create(item=item, model_version=version, label="negative",
                                  probabilities=[0.7, 0.1, 0.2], uncertainty=0.4)
    return lena, pool, gold


def _api_urls(project, pool, gold):
    base = f"/api/projects/{project.pk}"
    return [f"{base}/items/", f"{base}/items/?labeled=true", f"{base}/items/{pool.pk}/",
            f"{base}/annotations/", f"{base}/annotations/?labeler={OTHER}",
            f"{base}/export.jsonl", f"{base}/items/{gold.pk}/", f"{base}/items/?split=gold"]


def _page_urls(project, pool, gold):
    p = project.pk
    return [f"/projects/{p}/label/", f"/projects/{p}/label/next", f"/projects/{p}/my-labels/",
            f"/projects/{p}/agreement/", f"/projects/{p}/label-review/",
            f"/projects/{p}/items/{pool.pk}/review", f"/projects/{p}/items/{gold.pk}/explanation",
            f"/projects/{p}/items/{pool.pk}/explanation", f"/projects/{p}/dashboard/",
            f"/projects/{p}/analytics/", f"/projects/{p}/analytics.csv", f"/projects/{p}/export",
            f"/projects/{p}/models/", "/"]


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _assert_blind(response, *, what: str) -> None:
    body = _body(response)
    assert response.status_code < 500, what
    for secret in (OTHER, GOLD_TEXT, IMPORTED, '"gold_label"', '"final_label"',
                   '"imported_label"', "Adjudicated"):
        assert secret not in body, f"{what} shows {secret!r}"


@pytest.mark.parametrize("suggestions", [False, True])
@pytest.mark.parametrize("auth", ["token", "session"])
def test_a_labeler_reads_no_one_elses_labels_in_any_api_answer(scene, project, auth,
                                                               suggestions):
    project.show_suggestions = suggestions
    project.save()
    lena, pool, gold = scene
    if auth == "token":
        client = token_client(lena)
    else:
        client = Client()
        client.force_login(lena)
    for url in _api_urls(project, pool, gold):
        _assert_blind(client.get(url), what=f"{auth} GET {url}")


@pytest.mark.parametrize("suggestions", [False, True])
def test_a_labeler_reads_no_one_elses_labels_on_any_page(scene, project, suggestions):
    project.show_suggestions = suggestions
    project.save()
    lena, pool, gold = scene
    client = Client()
    client.force_login(lena)
    for url in _page_urls(project, pool, gold):
        _assert_blind(client.get(url), what=f"page {url}")


def test_a_labeler_gets_403_for_the_gold_split_and_404_for_a_gold_item(scene, project):
    lena, _, gold = scene
    client = token_client(lena)
    listed = client.get(f"/api/projects/{project.pk}/items/?split=gold")
    assert listed.status_code == 403
    assert "held out" in listed.json()["detail"]
    assert client.get(f"/api/projects/{project.pk}/items/{gold.pk}/").status_code == 404
    ids = [row["id"] for row in client.get(f"/api/projects/{project.pk}/items/").json()["results"]]
    assert gold.pk not in ids


def test_a_labeler_sees_only_their_own_annotation_of_an_item(scene, project):
    lena, pool, _ = scene
    body = token_client(lena).get(f"/api/projects/{project.pk}/items/{pool.pk}/").json()
    assert [(a["labeler"], a["label"]) for a in body["annotations"]] == [("lena", "positive")]
    assert "final_label" not in body and "gold_label" not in body


def test_a_labeler_sees_the_prediction_only_where_the_project_shows_suggestions(scene, project):
    lena, pool, _ = scene
    url = f"/api/projects/{project.pk}/items/{pool.pk}/"
    assert token_client(lena).get(url).json()["latest_prediction"] is None
    project.show_suggestions = True
    project.save()
    assert token_client(lena).get(url).json()["latest_prediction"]["label"] == "negative"


def test_the_state_filter_is_for_managers_only(scene, project):
    lena, _, _ = scene
    response = token_client(lena).get(f"/api/projects/{project.pk}/annotations/?state=disagreed")
    assert response.status_code == 403
    assert "managers only" in response.json()["detail"]


def test_a_labelers_own_annotation_on_a_gold_item_carries_no_prediction(scene, project):
    lena, _, gold = scene
    project.show_suggestions = project.label_gold_by_people = True
    project.save()
    label_as(lena, gold, "positive")
    from annotator.models import Annotation

    Annotation.objects.filter(item=gold).update(predicted_label="negative",
                                                predicted_confidence=0.7)
    rows = token_client(lena).get(f"/api/projects/{project.pk}/annotations/").json()["results"]
    on_gold = [row for row in rows if row["item_id"] == gold.pk]
    assert on_gold and on_gold[0]["predicted_label"] == "" and on_gold[0][
        "predicted_confidence"] is None


def test_a_gold_item_in_the_labeling_queue_comes_without_a_suggestion(scene, project):
    lena, pool, gold = scene
    project.show_suggestions = project.label_gold_by_people = True
    project.save()
    Item.objects.filter(pk=pool.pk).update(annotation_count=2)  # only the gold item is open
    client = Client()
    client.force_login(lena)
    payload = client.get(f"/projects/{project.pk}/label/next").json()
    assert payload["item"]["id"] == gold.pk
    assert payload["item"]["suggestion"] is None and payload["item"]["explain_url"] == ""


def test_a_manager_reads_every_label_and_the_prediction_as_label_probabilities(
        scene, project, lead):
    _, pool, gold = scene
    client = token_client(lead)
    body = client.get(f"/api/projects/{project.pk}/items/{pool.pk}/").json()
    assert sorted(a["labeler"] for a in body["annotations"]) == sorted(["lena", OTHER])
    assert (body["final_label"], body["imported_label"]) == ("neutral", IMPORTED)
    assert body["latest_prediction"]["probabilities"] == {
        "negative": 0.7, "neutral": 0.1, "positive": 0.2}
    gold_body = client.get(f"/api/projects/{project.pk}/items/{gold.pk}/").json()
    assert gold_body["gold_label"] == "negative"
    listed = client.get(f"/api/projects/{project.pk}/items/?split=gold").json()["results"]
    assert [row["id"] for row in listed] == [gold.pk]


def test_my_labels_shows_a_labeler_no_adjudication(scene, project):
    lena, pool, _ = scene
    client = Client()
    client.force_login(lena)
    assert "Adjudicated" not in client.get(f"/projects/{project.pk}/my-labels/").content.decode()
    annotation = pool.annotations.get(labeler=lena)
    response = client.post(f"/projects/{project.pk}/my-labels/{annotation.pk}",
                           {"label": "negative"}, follow=True)
    assert "neutral" not in " ".join(str(m) for m in response.context["messages"])
