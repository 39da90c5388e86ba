"""The labeling page and its JSON endpoints, end to end through the views."""

import json
import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from annotator.models import Annotation, Item
from annotator.selectors.training import training_labels
from annotator.services.labeling import (
    MAX_SECONDS_PER_ITEM,
    annotation_submit,
    item_adjudicate,
    item_lease_claim,
    project_apply_overlap,
)
from tests.annotator.labeling_factories import make_item, make_items

XSS = "<script>alert(1)</script> great shoes"


def _next(client, project):
    return client.get(reverse("label_next", args=[project.pk])).json()


def _submit(client, project, item_id, label, seconds="3.5"):
    return client.post(
        reverse("label_submit", args=[project.pk]),
        {"item": item_id, "label": label, "seconds": seconds},
    )


def _served(labeler, item):
    """Lease `item` to `labeler`, as the labeling page would have served it."""
    claimed = item_lease_claim(
        labeler=labeler, candidates=Item.objects.filter(pk=item.pk), lease_seconds=600
    )
    assert claimed is not None
    return claimed


def _label(labeler, item, label, **kwargs):
    return annotation_submit(labeler=labeler, item=_served(labeler, item), label=label, **kwargs)


def test_labeling_page_shows_label_keys_and_first_item(labeler_client, project):
    make_item(project, "Comfortable and light")
    response = labeler_client.get(reverse("label_page", args=[project.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<kbd>1</kbd> <span class="label-name">negative</span>' in page
    assert "Comfortable and light" in page  # initial item in the json_script config


def test_item_text_is_escaped_in_page_and_returned_as_plain_json(labeler_client, project):
    make_item(project, XSS, meta={"product": "<b>boot</b>"})
    page = labeler_client.get(reverse("label_page", args=[project.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "<b>boot</b>" not in page
    response = labeler_client.get(reverse("label_next", args=[project.pk]))
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["item"]["text"] == XSS  # data, put in the page with textContent
    assert data["item"]["meta"] == [["product", "<b>boot</b>"]]


def test_label_js_never_uses_innerhtml():
    from django.contrib.staticfiles import finders

    source = open(finders.find("annotator/label.js")).read()
    assert not re.search(r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write", source)


def test_submit_records_annotation_and_returns_next_item(labeler_client, labeler, project):
    cache.clear()
    make_items(project, 3)
    first = _next(labeler_client, project)["item"]
    response = _submit(labeler_client, project, first["id"], "positive")
    assert response.status_code == 200
    data = response.json()
    annotation = Annotation.objects.get(labeler=labeler)
    assert (annotation.item_id, annotation.label, annotation.seconds_spent) == (
        first["id"],
        "positive",
        3.5,
    )
    assert data["item"]["id"] != first["id"]
    assert data["progress"]["mine_today"] == 1
    cache.clear()  # project-wide counts are cached a few seconds
    assert _next(labeler_client, project)["progress"] == {"mine_today": 1, "done": 1, "total": 3}


def test_server_timing_is_sent_only_when_the_setting_asks(labeler_client, project, settings):
    make_items(project, 2)
    first = _next(labeler_client, project)["item"]
    assert "Server-Timing" not in _submit(labeler_client, project, first["id"], "positive")
    settings.SERVER_TIMING = True
    response = labeler_client.get(reverse("label_next", args=[project.pk]))
    assert response["Server-Timing"].startswith("app;dur=")


def test_a_label_for_an_item_leased_to_someone_else_is_refused_with_409(
    labeler_client, labeler, admin_user, project
):
    item = make_item(project, "theirs")
    _served(admin_user, item)
    response = _submit(labeler_client, project, item.pk, "positive")
    assert response.status_code == 409
    assert "not reserved for you" in response.json()["error"]
    assert not Annotation.objects.exists()
    item.refresh_from_db()
    assert item.annotation_count == 0 and item.leased_to == admin_user


def test_a_label_for_an_item_never_served_is_refused_with_409(labeler_client, project):
    make_items(project, 2)
    served = _next(labeler_client, project)["item"]
    other = Item.objects.exclude(pk=served["id"]).get()
    response = _submit(labeler_client, project, other.pk, "positive")
    assert response.status_code == 409
    assert not Annotation.objects.exists()
    assert Item.objects.get(pk=served["id"]).leased_to is not None  # still holds its own


def test_double_submit_is_idempotent(labeler_client, labeler, project):
    item = make_item(project, "fine")
    assert _next(labeler_client, project)["item"]["id"] == item.pk
    _submit(labeler_client, project, item.pk, "neutral")
    _submit(labeler_client, project, item.pk, "neutral")
    assert Annotation.objects.filter(item=item).count() == 1
    item.refresh_from_db()
    assert item.annotation_count == 1


def test_unknown_label_is_rejected_with_400(labeler_client, labeler, project):
    item = make_item(project, "fine")
    response = _submit(labeler_client, project, item.pk, "furious")
    assert response.status_code == 400
    assert not Annotation.objects.exists()


def test_seconds_spent_is_bounded_server_side(labeler, project):
    item = make_item(project, "slow one")
    annotation, _ = _label(labeler, item, "neutral", seconds_spent=1e9)
    assert annotation.seconds_spent == MAX_SECONDS_PER_ITEM
    other = make_item(project, "negative time")
    annotation, _ = _label(labeler, other, "neutral", seconds_spent=-5)
    assert annotation.seconds_spent == 0


def test_undo_returns_last_item_and_resubmit_changes_the_label(labeler_client, labeler, project):
    make_items(project, 3)
    first = _next(labeler_client, project)["item"]
    second = _submit(labeler_client, project, first["id"], "negative").json()["item"]
    undo = labeler_client.get(reverse("label_undo", args=[project.pk])).json()
    assert undo["item"]["id"] == first["id"]
    assert undo["item"]["current_label"] == "negative"
    after = _submit(labeler_client, project, first["id"], "positive").json()
    assert Annotation.objects.get(item_id=first["id"]).label == "positive"
    assert Annotation.objects.filter(labeler=labeler).count() == 1
    assert after["item"]["id"] == second["id"]  # the held item comes back


def test_undo_with_nothing_labeled_says_so(labeler_client, project):
    response = labeler_client.get(reverse("label_undo", args=[project.pk]))
    assert response.status_code == 404
    assert response.json()["item"] is None


def test_skipped_item_is_not_served_again_in_the_session(labeler_client, project):
    make_items(project, 2)
    first = _next(labeler_client, project)["item"]
    skip_url = reverse("label_skip", args=[project.pk])
    second = labeler_client.post(skip_url, {"item": first["id"]}).json()["item"]
    assert second["id"] != first["id"]
    third = labeler_client.post(skip_url, {"item": second["id"]}).json()
    assert third["item"] is None
    assert Item.objects.filter(leased_to__isnull=False).count() == 0


def test_empty_queue_answers_no_item(labeler_client, project):
    assert _next(labeler_client, project)["item"] is None


def test_dialogue_turns_and_meta_are_sent_as_structure(labeler_client, project):
    turns = [
        {"speaker": "customer", "text": "Where is my parcel?"},
        {"speaker": "agent", "text": "On its way."},
    ]
    make_item(
        project,
        "dialogue",
        kind="dialogue",
        turns=turns,
        meta={"source": "chat", "nested": {"x": 1}},
    )
    item = _next(labeler_client, project)["item"]
    assert item["turns"] == turns
    assert item["meta"] == [["source", "chat"]]


def test_overlap_applies_to_a_deterministic_share_of_the_pool(project):
    make_items(project, 40)
    make_items(project, 5, prefix="gold", split=Item.Split.GOLD)
    project.overlap_percent, project.overlap_labelers = 25, 3
    assert project_apply_overlap(project) == 10
    chosen = set(Item.objects.filter(required_labels=3).values_list("pk", flat=True))
    lowest = Item.objects.filter(split="pool").order_by("random_key", "pk")[:10]
    assert chosen == {item.pk for item in lowest}
    project.overlap_percent = 50
    project_apply_overlap(project)
    assert chosen < set(Item.objects.filter(required_labels=3).values_list("pk", flat=True))
    project.overlap_percent = 0
    assert project_apply_overlap(project) == 0
    assert not Item.objects.exclude(required_labels=1).exists()


def test_overlap_submit_is_recorded_as_overlap(labeler, project):
    item = make_item(project, "shared", required_labels=2)
    annotation, _ = _label(labeler, item, "neutral")
    assert annotation.picked_by == Annotation.Picked.OVERLAP


def test_training_labels_use_consensus_final_label_and_skip_gold_and_ties(
    project, labeler, admin_user
):
    from django.contrib.auth import get_user_model

    third = get_user_model().objects.create_user("third")
    project.members.add(third)
    project.label_gold_by_people = True
    project.save()
    majority = make_item(project, "majority", required_labels=3)
    tie = make_item(project, "tie", required_labels=2)
    judged = make_item(project, "judged", required_labels=2)
    gold = make_item(project, "gold", split=Item.Split.GOLD, gold_label="positive")
    for user, label in [(labeler, "positive"), (admin_user, "positive"), (third, "negative")]:
        _label(user, majority, label)
    _label(labeler, tie, "positive")
    _label(third, tie, "negative")
    _label(labeler, judged, "positive")
    _label(third, judged, "negative")
    item_adjudicate(admin=admin_user, item=judged, label="neutral")
    _label(labeler, gold, "positive")
    assert training_labels(project) == [
        (majority.pk, "majority", "positive"),
        (judged.pk, "judged", "neutral"),
    ]


def test_adjudication_keeps_the_original_annotations(admin_client, admin_user, labeler, project):
    item = make_item(project, "disputed", required_labels=2)
    _label(labeler, item, "positive")
    _label(admin_user, item, "negative")
    response = admin_client.post(
        reverse("adjudicate", args=[project.pk, item.pk]), {"label": "neutral"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.final_label, item.adjudicated_by) == ("neutral", admin_user)
    assert item.adjudicated_at is not None
    assert sorted(item.annotations.values_list("label", flat=True)) == ["negative", "positive"]


def test_adjudication_rejects_unknown_label(admin_client, admin_user, project):
    item = make_item(project, "disputed")
    admin_client.post(reverse("adjudicate", args=[project.pk, item.pk]), {"label": "bogus"})
    item.refresh_from_db()
    assert item.final_label == ""


def test_agreement_page_lists_disagreements_escaped(admin_client, admin_user, labeler, project):
    item = make_item(project, XSS, required_labels=2)
    _label(labeler, item, "positive")
    _label(admin_user, item, "negative")
    page = admin_client.get(reverse("agreement", args=[project.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert f'id="item-{item.pk}"' in page


def test_config_json_script_is_valid_json(labeler_client, project):
    make_item(project, XSS)
    page = labeler_client.get(reverse("label_page", args=[project.pk])).content.decode()
    start = page.index('<script id="label-config" type="application/json">') + len(
        '<script id="label-config" type="application/json">'
    )
    config = json.loads(page[start : page.index("</script>", start)])
    assert config["initial"]["item"]["text"] == XSS
    assert set(config["urls"]) == {"next", "submit", "skip", "undo"}


@pytest.fixture(autouse=True)
def _db(db):
    pass


def test_admin_changing_overlap_applies_it_to_the_pool(admin_client, project):
    make_items(project, 10)
    url = reverse("admin:annotator_project_change", args=[project.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list | dict)
    }
    data.update(
        labels=json.dumps(project.labels), overlap_percent=30, overlap_labelers=2,
        **{"membership_set-TOTAL_FORMS": 0, "membership_set-INITIAL_FORMS": 0},
    )  # fmt: skip
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Item.objects.filter(required_labels=2).count() == 3


def test_admin_item_list_filters_and_search(admin_client, project):
    make_item(project, "findable text")
    url = reverse("admin:annotator_item_changelist")
    assert "findable text" in admin_client.get(url, {"q": "findable"}).content.decode()
    assert admin_client.get(url, {"final_label__isempty": "1"}).status_code == 200
    assert (
        admin_client.get(
            reverse("admin:annotator_annotation_changelist"), {"q": "lena"}
        ).status_code
        == 200
    )


def _version_with_prediction(project, item):
    from annotator.models import ModelVersion, Prediction

    version = ModelVersion.objects.create(
        project=project, version=1, base_model="m", artifact_path="x", is_active=True,
        label_names=project.label_names,
    )
    Prediction.objects.create(item=item, model_version=version, label="positive",
                              probabilities=[0.1, 0.2, 0.7], uncertainty=0.5)


def test_the_model_suggestion_is_hidden_by_default(labeler_client, project):
    item = make_item(project, "Nice heels")
    _version_with_prediction(project, item)
    assert _next(labeler_client, project)["item"]["suggestion"] is None


def test_the_model_suggestion_shows_when_the_admin_turns_it_on(labeler_client, project):
    project.show_suggestions = True
    project.save()
    item = make_item(project, "Nice heels")
    _version_with_prediction(project, item)
    assert _next(labeler_client, project)["item"]["suggestion"] == {
        "label": "positive", "confidence": 0.7,
    }
