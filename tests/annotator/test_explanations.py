"""Explanations on the platform: the prediction API's explain=true, the item explanation the
labeling page and the admin's item review fetch, and who may see them."""

import pytest
from django.test import Client
from django.urls import reverse

from annotator.lib.cleaning import clean_text
from tests.annotator.labeling_factories import make_item
from tests.annotator.serving_helpers import add_version, token_client


@pytest.fixture
def review(project):
    return make_item(project, "Great fit, but the zipper broke 😞 after a week")


def _spans_point_into(text: str, words: list[dict]) -> bool:
    return all(text[w["start"]:w["end"]] == w["text"] for w in words)


def test_the_api_explains_each_prediction_on_request(project, admin_user):
    add_version(project, 1, active=True)
    texts = ["love these shoes", "质量很好，但是物流太慢了"]
    url = reverse("api_predict", args=[project.pk])
    plain = token_client(admin_user).post(url, {"texts": texts}, format="json").json()
    assert "explanation" not in plain["predictions"][0]
    answer = token_client(admin_user).post(url, {"texts": texts, "explain": True},
                                           format="json").json()
    for text, prediction in zip(texts, answer["predictions"], strict=True):
        explanation = prediction["explanation"]
        assert explanation["label"] == prediction["label"]
        assert explanation["text"] == clean_text(text)  # the spans point into the cleaned text
        assert explanation["words"] and _spans_point_into(explanation["text"],
                                                          explanation["words"])
    assert [w["text"] for w in answer["predictions"][0]["explanation"]["words"]] == \
        ["love", "these", "shoes"]


def test_explanations_are_limited_per_request(project, admin_user, settings):
    add_version(project, 1, active=True)
    settings.API_MAX_EXPLAIN_TEXTS = 2  # read when validating
    from annotator.api.serializers import predict as serializers

    body = serializers.PredictRequestSerializer(data={"texts": ["a", "b", "c"], "explain": True})
    assert not body.is_valid()
    assert "explain" in body.errors


def test_the_admin_gets_the_explanation_of_an_item(admin_client, project, review):
    add_version(project, 1, active=True)
    answer = admin_client.get(reverse("item_explanation", args=[project.pk, review.pk]))
    assert answer.status_code == 200
    data = answer.json()
    assert data["model_version"] == 1 and data["label"] in data["probabilities"]
    assert _spans_point_into(review.text, data["words"])
    assert "😞" in [w["text"] for w in data["words"]]


def test_without_a_model_the_explanation_says_so(admin_client, project, review):
    answer = admin_client.get(reverse("item_explanation", args=[project.pk, review.pk]))
    assert answer.status_code == 409 and "No model yet" in answer.json()["error"]


def test_labelers_get_explanations_only_where_suggestions_are_shown(labeler_client, project,
                                                                   review, outsider):
    add_version(project, 1, active=True)
    url = reverse("item_explanation", args=[project.pk, review.pk])
    assert labeler_client.get(url).status_code == 403
    project.show_suggestions = True
    project.save()
    assert labeler_client.get(url).status_code == 200
    other = Client()
    other.force_login(outsider)
    assert other.get(url).status_code == 404


def test_the_labeling_page_gets_an_explanation_address_with_a_suggestion(labeler_client, project,
                                                                        review, monkeypatch):
    url = reverse("label_next", args=[project.pk])
    assert labeler_client.get(url).json()["item"]["explain_url"] == ""
    monkeypatch.setattr("annotator.selectors.queue.suggestion_for", lambda item: ("positive", 0.8))
    item = labeler_client.get(url).json()["item"]
    assert item["explain_url"] == reverse("item_explanation", args=[project.pk, review.pk])


def test_without_an_explanation_the_item_says_why_not(labeler_client, project, review,
                                                      monkeypatch):
    """`w` answers on every item: the reason there is nothing to explain, in plain words."""
    url = reverse("label_next", args=[project.pk])
    item = labeler_client.get(url).json()["item"]
    assert item["explain_url"] == "" and "suggestions are off" in item["no_explanation"]
    project.show_suggestions = True
    project.save()
    item = labeler_client.get(url).json()["item"]
    assert "no suggestion for this item" in item["no_explanation"]
    monkeypatch.setattr("annotator.selectors.queue.suggestion_for", lambda item: ("positive", 0.8))
    item = labeler_client.get(url).json()["item"]
    assert item["explain_url"] and item["no_explanation"] == ""
    review.turns = [{"speaker": "customer", "text": "is it warm?"}]
    review.save()
    item = labeler_client.get(url).json()["item"]
    assert item["explain_url"] == "" and "conversation" in item["no_explanation"]
