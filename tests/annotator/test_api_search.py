"""Search in the items API (GET /api/projects/<id>/items/?q=...): parameters, pagination,
who sees what, and 400s with {"detail": ...} for bad input. SQLite and PostgreSQL."""

from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model

from annotator.models import Annotation, Item, Membership, ModelVersion, Prediction
from tests.annotator.labeling_factories import make_item
from tests.annotator.serving_helpers import token_client

TEXTS = ["Great shoes, true to size", "鞋子质量很差,穿了一周就坏了", "好评,鞋子很舒服",
         "These shoes hurt after an hour of walking", "Phone case, nice colour"]


@pytest.fixture
def items(project):
    return [make_item(project, text, meta={"store": "tmall" if n % 2 else "jd"})
            for n, text in enumerate(TEXTS)]


@pytest.fixture
def manager(project):
    user = get_user_model().objects.create_user("ada")
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return token_client(user)


def _get(client, project, query: str, status: int = 200) -> dict:
    response = client.get(f"/api/projects/{project.pk}/items/{query}")
    assert response.status_code == status, response.content
    return response.json()


def _texts(body: dict) -> list[str]:
    return [row["text"] for row in body["results"]]


def test_q_searches_the_text_in_any_script(project, manager, items):
    assert set(_texts(_get(manager, project, "?q=shoes"))) == {TEXTS[0], TEXTS[3]}
    assert _texts(_get(manager, project, f"?q={quote('质量很差')}")) == [TEXTS[1]]
    assert set(_texts(_get(manager, project, f"?q={quote('鞋子')}"))) == {TEXTS[1], TEXTS[2]}
    assert _texts(_get(manager, project, f"?q={quote('差')}")) == [TEXTS[1]]


def test_search_combines_with_the_existing_filters(project, manager, items):
    assert _texts(_get(manager, project, "?q=shoes&meta__store=tmall")) == [TEXTS[3]]
    assert _texts(_get(manager, project, "?q=shoes&kind=dialogue")) == []
    assert _texts(_get(manager, project, "?q=shoes&labeled=false&split=pool&sort=oldest")) == [
        TEXTS[0], TEXTS[3]]


def test_without_q_or_sort_the_list_stays_oldest_first_by_cursor(project, manager, items):
    first = _get(manager, project, "?page_size=2")
    assert _texts(first) == TEXTS[:2] and "cursor=" in first["next"]
    assert _texts(manager.get(first["next"]).json()) == TEXTS[2:4]


def test_newest_first_pages_by_cursor(project, manager, items):
    first = _get(manager, project, "?sort=newest&page_size=3")
    assert _texts(first) == TEXTS[::-1][:3] and "cursor=" in first["next"]
    assert _texts(manager.get(first["next"]).json()) == TEXTS[::-1][3:]


def test_relevance_pages_by_number_until_next_is_null(project, manager, items):
    make_item(project, "shoes")
    body, seen = _get(manager, project, "?q=shoes&page_size=1"), []
    assert body["previous"] is None
    while True:
        seen += _texts(body)
        if body["next"] is None:
            break
        assert "page=" in body["next"]
        body = manager.get(body["next"]).json()
        assert body["previous"] is not None
    assert seen[0] == "shoes"  # the closest match first
    assert sorted(seen) == sorted(["shoes", TEXTS[0], TEXTS[3]])


@pytest.fixture
def labeler_api(labeler):
    return token_client(labeler)


@pytest.fixture
def gold(project):
    return make_item(project, "Gold shoes", split=Item.Split.GOLD, gold_label="positive")


def test_a_labeler_searches_the_pool_only_and_their_own_labels(
        project, labeler, labeler_api, items, gold):
    colleague = get_user_model().objects.create_user("carl")
    Membership.objects.create(project=project, user=colleague)
    Annotation.objects.create(item=items[0], labeler=colleague, label="positive")
    Annotation.objects.create(item=items[3], labeler=labeler, label="negative")
    assert "Gold shoes" not in _texts(_get(labeler_api, project, "?q=shoes"))
    assert _texts(_get(labeler_api, project, "?label=positive")) == []
    assert _texts(_get(labeler_api, project, "?label=negative")) == [TEXTS[3]]
    assert _texts(_get(labeler_api, project, "?labeler=lena")) == [TEXTS[3]]
    refused = _get(labeler_api, project, "?labeler=carl", status=403)
    assert "only their own labels" in refused["detail"]


def test_managers_filter_by_labeler_and_see_gold(project, manager, labeler, items, gold):
    Annotation.objects.create(item=gold, labeler=labeler, label="positive")
    assert _texts(_get(manager, project, "?q=shoes&labeler=lena&label=positive")) == [
        "Gold shoes"]


@pytest.fixture
def predicted(project, items):
    version = ModelVersion.objects.create(project=project, version=1, artifact_path="v1",
                                          label_names=["negative", "positive"],
                                          base_model="tiny", is_active=True)
    Prediction.objects.create(item=items[1], model_version=version, label="negative",
                              probabilities=[0.9, 0.1], uncertainty=0.1)
    Prediction.objects.create(item=items[2], model_version=version, label="positive",
                              probabilities=[0.4, 0.6], uncertainty=0.6)


def test_prediction_filters(project, manager, labeler_api, items, predicted):
    assert _texts(_get(manager, project, "?predicted_label=negative")) == [TEXTS[1]]
    assert _texts(_get(manager, project, "?confidence_min=0.5&confidence_max=0.7")) == [
        TEXTS[2]]
    refused = _get(labeler_api, project, "?predicted_label=negative", status=403)
    assert "does not show" in refused["detail"]
    project.show_suggestions = True
    project.save()
    assert _texts(_get(labeler_api, project, f"?q={quote('鞋子')}&confidence_min=0.8")) == [
        TEXTS[1]]


@pytest.mark.parametrize(("query", "message"), [
    ("?q=" + "x" * 501, "at most 500 characters"),
    ("?q=%21%21%21", "nothing to look for"),
    ("?q=%20", "nothing to look for"),
    ("?q=%00", "nothing to look for"),
    ("?sort=best", "sort must be one of"),
    ("?confidence_min=high", "confidence_min: a number from 0 to 1"),
    ("?confidence_max=1.5", "confidence_max must be a number from 0 to 1"),
    ("?confidence_min=nan", "confidence_min must be a number from 0 to 1"),
    ("?q=shoes&page=0", "page: a number from 1 to"),
    ("?q=shoes&page=two", "page: a number from 1 to"),
    ("?label=a%00b", "control characters"),
    ("?meta__store=a%00b", "control characters"),
    ("?split=train&labeled=maybe", "split: one of pool, gold; labeled: true or false"),
])
def test_bad_input_is_400_with_a_detail(project, manager, items, query, message):
    assert message in _get(manager, project, query, status=400)["detail"]


def test_the_schema_documents_the_search_parameters(project, manager):
    schema = manager.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/projects/{project_id}/items/"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"q", "sort", "label", "labeler", "predicted_label", "confidence_min",
            "confidence_max", "page", "cursor", "split", "meta__<field>"} <= names
    sort = next(p for p in operation["parameters"] if p["name"] == "sort")
    assert set(sort["schema"]["enum"]) == {"relevance", "newest", "oldest"}
