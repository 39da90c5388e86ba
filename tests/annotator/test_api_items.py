"""Items API: pushing (cleaning, dedupe, idempotency, limits, JSON lines), listing, reading."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework.test import APIClient

from annotator.models import Annotation, Item, Membership
from annotator.services import items as item_services
from tests.annotator.serving_helpers import token_client

LABELS = [{"name": "negative"}, {"name": "neutral"}, {"name": "positive"}]


@pytest.fixture
def manager(project):
    project.labels = LABELS
    project.save()
    user = get_user_model().objects.create_user("ada")
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return token_client(user)


def _push(client, project, rows):
    return client.post(f"/api/projects/{project.pk}/items/", rows, format="json")


def _ndjson(client, project, lines: list[str]):
    return client.post(f"/api/projects/{project.pk}/items/", "\n".join(lines),
                       content_type="application/x-ndjson")


# --- access ------------------------------------------------------------------------


def test_anonymous_requests_get_401(project):
    url = f"/api/projects/{project.pk}/items/"
    assert APIClient().get(url).status_code == 401
    assert APIClient().post(url, [{"text": "x"}], format="json").status_code == 401


def test_a_labeler_of_another_project_cannot_read_its_items(project, outsider):
    item = Item.objects.create(project=project, text="fine", raw_text="fine", content_hash="h")
    client = token_client(outsider)
    assert client.get(f"/api/projects/{project.pk}/items/").status_code == 403
    assert client.get(f"/api/projects/{project.pk}/items/{item.pk}/").status_code == 403


def test_a_labeler_reads_but_cannot_push(project, labeler):
    client = token_client(labeler)
    assert client.get(f"/api/projects/{project.pk}/items/").status_code == 200
    response = _push(client, project, [{"text": "great shoes"}])
    assert response.status_code == 403
    assert not Item.objects.exists()


# --- pushing -----------------------------------------------------------------------


def test_a_push_cleans_and_dedupes_as_an_import_does(project, manager):
    response = _push(manager, project, [
        {"text": "<b>Great</b>   shoes &amp; socks", "external_id": "a1", "meta": {"store": "tmall"}},
        {"text": "Great shoes & socks", "external_id": "a2"},  # the same clean text
        {"text": "   ", "external_id": "a3"},
        {"text": "鞋子很好", "label": "positive", "external_id": "a4"},
    ])
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (2, 1, 1)
    assert [row["status"] for row in body["rows"]] == ["created", "duplicate", "rejected",
                                                       "created"]
    assert "empty text after cleaning" in body["rows"][2]["reason"]
    first = Item.objects.get(external_id="a1")
    assert first.text == "Great shoes & socks"
    assert first.meta == {"store": "tmall"}
    assert len(first.content_hash) == 64
    assert Item.objects.get(external_id="a4").imported_label == "positive"

    again = _push(manager, project, [{"text": "Great shoes &amp; socks", "external_id": "b1"}])
    assert again.json()["rows"][0] == {
        "index": 0, "status": "duplicate", "item_id": first.pk,
        "reason": "duplicate: the project already has this text"}


def test_the_same_request_twice_creates_nothing_new(project, manager):
    rows = [{"text": f"review number {n}", "external_id": f"r{n}"} for n in range(5)]
    first = _push(manager, project, rows).json()
    second = _push(manager, project, rows).json()
    assert first["created"] == 5
    assert (second["created"], second["existing"]) == (0, 5)
    assert [row["item_id"] for row in second["rows"]] == [row["item_id"] for row in first["rows"]]
    assert Item.objects.count() == 5


def test_rows_with_problems_are_rejected_one_by_one_with_reasons(project, manager):
    body = _push(manager, project, [
        {"text": "fine", "label": "ecstatic"},
        {"text": "fine too", "kind": "poem"},
        {"text": "ok", "colour": "red"},
        "just a string",
        {"text": "good", "meta": "not an object"},
        {"text": "same id", "external_id": "x"},
        {"text": "same id again", "external_id": "x"},
    ]).json()
    reasons = [row.get("reason", "") for row in body["rows"]]
    assert "not in the project's label set" in reasons[0]
    assert "kind 'poem'" in reasons[1]
    assert "unknown field(s) 'colour'" in reasons[2]
    assert "expected an object" in reasons[3]
    assert "meta must be an object" in reasons[4]
    assert body["rows"][6]["status"] == "duplicate" and "row 5" in reasons[6]
    assert body["created"] == 1


def test_dialogue_turns_become_the_text(project, manager):
    body = _push(manager, project, [{"turns": [
        {"speaker": "customer", "text": "Where is my <i>order</i>?"},
        {"speaker": "agent", "text": "On its way."}]}]).json()
    item = Item.objects.get(pk=body["rows"][0]["item_id"])
    assert item.text == "customer: Where is my order?\nagent: On its way."
    assert item.kind == "dialogue"


def test_a_jsonl_body_is_accepted(project, manager):
    lines = [json.dumps({"text": f"评论 {n}", "external_id": str(n)}, ensure_ascii=False)
             for n in range(3)]
    response = _ndjson(manager, project, [lines[0], "", *lines[1:]])
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 3


def test_malformed_json_lines_are_400_with_the_line(project, manager):
    response = _ndjson(manager, project, ['{"text": "a"}', '{"text": '])
    assert response.status_code == 400
    assert "line 2" in response.json()["detail"]


@override_settings(API_MAX_PUSH_ITEMS=3)
def test_too_many_items_are_refused_whole(project, manager):
    response = _push(manager, project, [{"text": f"t{n}"} for n in range(4)])
    assert response.status_code == 400
    assert "too many items: 4, the limit is 3" in response.json()["detail"]
    assert not Item.objects.exists()


def test_a_body_that_is_not_an_array_is_400(project, manager):
    assert _push(manager, project, {"text": "x"}).status_code == 400
    assert _push(manager, project, []).status_code == 400
    bad = manager.post(f"/api/projects/{project.pk}/items/", "[{", content_type="application/json")
    assert bad.status_code == 400 and "JSON parse error" in bad.json()["detail"]


def test_a_push_requests_the_imports_follow_ups_and_the_monitoring_hook(
        project, manager, monkeypatch, django_capture_on_commit_callbacks):
    arrived = []
    monkeypatch.setattr(item_services, "items_arrived",
                        lambda **kw: arrived.append(kw))
    monkeypatch.setattr(item_services, "vocabulary_check_request", lambda **kw: None)
    monkeypatch.setattr(item_services, "enqueue_seeding", lambda pk: arrived.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        body = _push(manager, project, [{"text": "one"}, {"text": "two"}]).json()
    ids = sorted(row["item_id"] for row in body["rows"])
    assert project.pk in arrived  # seeding: the project has no model yet
    hook = next(call for call in arrived if isinstance(call, dict))
    assert hook["project_id"] == project.pk and sorted(hook["item_ids"]) == ids


# --- reading -----------------------------------------------------------------------


@pytest.fixture
def catalogue(project, manager):
    _push(manager, project, [
        {"text": "good shoes", "meta": {"store": "tmall", "stars": 5}},
        {"text": "bad shoes", "meta": {"store": "jd", "stars": 1}},
        {"text": "a chat", "kind": "dialogue", "meta": {"store": "tmall"}},
    ])
    return {item.text: item for item in Item.objects.all()}


def _list(client, project, query=""):
    response = client.get(f"/api/projects/{project.pk}/items/{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_list_filters_by_meta_kind_labeled_and_split(project, manager, catalogue):
    texts = lambda body: [row["text"] for row in body["results"]]  # noqa: E731
    assert texts(_list(manager, project, "?meta__store=tmall")) == ["good shoes", "a chat"]
    assert texts(_list(manager, project, "?meta__stars=5")) == ["good shoes"]
    assert texts(_list(manager, project, "?kind=dialogue")) == ["a chat"]
    Item.objects.filter(pk=catalogue["bad shoes"].pk).update(annotation_count=1)
    assert texts(_list(manager, project, "?labeled=true")) == ["bad shoes"]
    assert len(_list(manager, project, "?labeled=false&split=pool")["results"]) == 2
    assert _list(manager, project, "?split=gold")["results"] == []
    assert texts(_list(manager, project, "?created_after=2000-01-01")) == [
        "good shoes", "bad shoes", "a chat"]
    assert _list(manager, project, "?created_before=2000-01-01T00:00:00Z")["results"] == []


def test_malformed_filters_are_400(project, manager):
    for query in ("?labeled=maybe", "?split=train", "?created_after=yesterday",
                  "?meta__a__contains=x"):
        assert manager.get(f"/api/projects/{project.pk}/items/{query}").status_code == 400, query


def test_the_list_pages_by_cursor(project, manager):
    _push(manager, project, [{"text": f"review {n}"} for n in range(5)])
    first = _list(manager, project, "?page_size=2")
    assert len(first["results"]) == 2
    second = manager.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] > [r["id"] for r in first["results"]]


def test_an_item_shows_its_annotations(project, manager, labeler, catalogue):
    item = catalogue["good shoes"]
    Annotation.objects.create(item=item, labeler=labeler, label="positive")
    body = token_client(labeler).get(f"/api/projects/{project.pk}/items/{item.pk}/").json()
    assert body["annotations"][0]["label"] == "positive"
    assert body["annotations"][0]["labeler"] == "lena"
    assert body["latest_prediction"] is None
    missing = manager.get(f"/api/projects/{project.pk}/items/999999/")
    assert missing.status_code == 404
