"""The annotations API: provenance rows by cursor page, filters, who reads what; the JSONL download."""

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Annotation, Item, Membership
from annotator.services.exporting import export_rows
from tests.annotator.serving_helpers import token_client


def _item(project, n: int, **fields) -> Item:
    text = f"review {project.id}-{n}"
    return Item.objects.create(project=project, raw_text=text, text=text, external_id=f"x{n}",
                               content_hash=hashlib.sha256(text.encode()).hexdigest(), **fields)


def _label(item, user, label: str) -> Annotation:
    Item.objects.filter(pk=item.pk).update(annotation_count=item.annotations.count() + 1)
    return Annotation.objects.create(item=item, labeler=user, label=label, picked_by="random")


@pytest.fixture
def mia(project):
    user = get_user_model().objects.create_user("mia")
    Membership.objects.create(project=project, user=user)
    return user


@pytest.fixture
def states(project, labeler, mia):
    """One item in each agreement state: {state: item}."""
    agreed, disagreed, adjudicated, single = (_item(project, n) for n in range(4))
    _label(agreed, labeler, "positive"), _label(agreed, mia, "positive")
    _label(disagreed, labeler, "positive"), _label(disagreed, mia, "negative")
    _label(adjudicated, labeler, "positive"), _label(adjudicated, mia, "negative")
    Item.objects.filter(pk=adjudicated.pk).update(final_label="negative")
    _label(single, mia, "neutral")
    return {"agreed": agreed, "disagreed": disagreed, "adjudicated": adjudicated,
            "single": single}


def _url(project, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("api_annotations", args=[project.id]) + (f"?{query}" if query else "")


def _ids(client, url) -> list[int]:
    return [row["id"] for row in client.get(url).json()["results"]]


def test_anonymous_callers_get_401(project):
    assert APIClient().get(_url(project)).status_code == 401
    assert APIClient().get(reverse("api_export_jsonl", args=[project.id])).status_code == 401


def test_a_labeler_cannot_read_another_projects_annotations(outsider, project, states):
    response = token_client(outsider).get(_url(project))
    assert response.status_code == 403 and "detail" in response.json()


def test_a_missing_project_is_404(admin_user):
    assert token_client(admin_user).get(_url(type("P", (), {"id": 999})())).status_code == 404


def test_a_labeler_reads_only_their_own(labeler, mia, project, states):
    rows = token_client(labeler).get(_url(project)).json()["results"]
    assert {row["labeler"] for row in rows} == {"lena"} and len(rows) == 3
    assert token_client(labeler).get(_url(project, labeler="mia")).json()["results"] == []


def test_a_manager_reads_every_annotation_with_its_provenance(admin_user, project, states):
    rows = token_client(admin_user).get(_url(project)).json()["results"]
    assert len(rows) == Annotation.objects.count() == 7
    first = Annotation.objects.order_by("pk").first()
    assert rows[0] == {
        "id": first.id, "item_id": first.item_id, "external_id": first.item.external_id,
        "labeler": "lena", "label": "positive",
        "created_at": rows[0]["created_at"], "updated_at": rows[0]["updated_at"],
        "seconds_spent": None, "picked_by": "random", "strategy": "", "model_version": None,
        "ranked_by_head": None, "predicted_label": "", "predicted_confidence": None,
    }


def test_the_cursor_walks_every_row_exactly_once(admin_user, project, labeler):
    for n in range(23):
        _label(_item(project, n), labeler, "positive")
    client, url, seen = token_client(admin_user), _url(project, page_size=5), []
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == list(Annotation.objects.order_by("pk").values_list("pk", flat=True))


@pytest.mark.parametrize("state", ["agreed", "disagreed", "adjudicated", "single"])
def test_the_state_filter_follows_the_items_agreement(admin_user, project, states, state):
    ids = _ids(token_client(admin_user), _url(project, state=state))
    assert sorted(ids) == sorted(states[state].annotations.values_list("pk", flat=True))


def test_labeler_and_date_filters(admin_user, project, states):
    client = token_client(admin_user)
    assert len(_ids(client, _url(project, labeler="mia"))) == 4
    old = Annotation.objects.order_by("pk").first()
    Annotation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert old.pk not in _ids(client, _url(project, since=yesterday))
    assert _ids(client, _url(project, until=yesterday)) == [old.pk]


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"state": "maybe"}])
def test_unreadable_filters_are_400_with_a_detail(admin_user, project, params):
    response = token_client(admin_user).get(_url(project, **params))
    assert response.status_code == 400 and "detail" in response.json()


def test_the_jsonl_download_is_the_labeled_export(admin_user, project, states):
    _item(project, 99)  # unlabeled: not in the labeled set
    response = token_client(admin_user).get(reverse("api_export_jsonl", args=[project.id]))
    assert response.status_code == 200 and response["Content-Type"].startswith(
        "application/x-ndjson")
    body = b"".join(response.streaming_content).decode()
    assert body == "".join(export_rows(project=project, fmt="jsonl", labeled_only=True))
    assert body.count("\n") == 4


def test_a_labeler_cannot_download_the_jsonl(labeler, project, states):
    response = token_client(labeler).get(reverse("api_export_jsonl", args=[project.id]))
    assert response.status_code == 403
