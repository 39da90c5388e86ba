"""A new version becomes active only if it is not worse than the active one beyond noise
(services.activation): paired on gold, else on validation items neither trained on, else
activated with "no comparison"; a refused version is kept, listed, and can be activated anyway.

The fast tests fake the trainer's predictions; the slow ones fine-tune for real."""

import hashlib
import re
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotator.models import Annotation, Item, ModelVersion, TrainingRun
from annotator.services import training as svc
from tests.annotator.serving_helpers import add_version, token_client
from tests.annotator.training_helpers import add_labeled_items
from tests.trainer.tiny import LABELS, fake_train_copying

GOLD = 40


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("annotator.tasks.score_pool_task.delay") as score, \
            mock.patch("annotator.tasks.find_label_issues_task.delay"), \
            mock.patch("annotator.tasks.train_project_task.delay"):
        yield score


@pytest.fixture
def gold(project, labeler):
    add_labeled_items(project, labeler, gold=GOLD)
    return {text: LABELS.index(label) for text, label in
            Item.objects.filter(project=project, split="gold").values_list("text", "gold_label")}


def _right(gold):
    return lambda text: gold.get(text, 0)


def _always_negative(text):
    return 0


def _train(project, monkeypatch, tiny_model, predict, **kw) -> ModelVersion:
    monkeypatch.setattr("trainer.train.train", fake_train_copying(tiny_model, predict=predict,
                                                                  **kw))
    return svc.training_run_execute(run_id=TrainingRun.objects.create(project=project).id)


def _relabel(project):
    """One label changed: something new to learn."""
    annotation = Annotation.objects.filter(item__project=project, label="positive").first()
    annotation.label = "neutral"
    annotation.save()


def test_the_first_version_is_activated_and_keeps_its_gold_predictions(
    project, gold, monkeypatch, tiny_model
):
    v1 = _train(project, monkeypatch, tiny_model, _right(gold))
    assert v1.is_active and v1.activation["activated"]
    assert v1.activation["reason"] == "activated: no version was active"
    ids = set(Item.objects.filter(project=project, split="gold").values_list("id", flat=True))
    assert {item_id for item_id, _ in v1.gold_predictions} == ids
    text_of = dict(Item.objects.filter(id__in=ids).values_list("id", "text"))
    assert all(gold[text_of[i]] == label for i, label in v1.gold_predictions)


def test_a_version_worse_on_the_same_gold_items_is_kept_but_not_activated(
    project, gold, monkeypatch, tiny_model, no_broker
):
    v1 = _train(project, monkeypatch, tiny_model, _right(gold))
    no_broker.reset_mock()
    _relabel(project)
    v2 = _train(project, monkeypatch, tiny_model, _always_negative)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert v1.is_active and not v2.is_active and v2.version == 2
    decision = v2.activation
    assert decision["activated"] is False and decision["compared_with"] == 1
    assert decision["on"] == "gold" and decision["comparison"]["worse"]
    new, old = decision["comparison"]["new_macro_f1"], decision["comparison"]["old_macro_f1"]
    assert re.fullmatch(rf"not activated: macro-F1 0\.\d{{3}} vs 1\.000 of v1 on the same {GOLD} "
                        "gold items", decision["reason"])
    assert f"{new:.2f}" in decision["reason"] and new < old == 1.0
    assert TrainingRun.objects.get(model_version=v2).status == "succeeded"
    no_broker.assert_not_called()  # the pool is not scored with a version nobody serves


def test_a_version_as_good_as_the_active_one_is_activated(project, gold, monkeypatch, tiny_model):
    _train(project, monkeypatch, tiny_model, _right(gold))
    _relabel(project)
    v2 = _train(project, monkeypatch, tiny_model, _right(gold))
    assert v2.is_active and v2.activation["activated"]
    assert v2.activation["reason"] == (f"activated: macro-F1 1.000 vs 1.000 of v1 on the same "
                                       f"{GOLD} gold items")
    assert list(ModelVersion.objects.filter(is_active=True)) == [v2]


def test_an_active_version_from_before_the_rule_predicts_the_gold_when_compared(
    project, gold, monkeypatch, tiny_model
):
    v1 = add_version(project, 1, active=True)  # real files, no stored gold predictions
    assert v1.gold_predictions == []
    v2 = _train(project, monkeypatch, tiny_model, _right(gold))
    v1.refresh_from_db()
    assert v2.activation["on"] == "gold" and v2.activation["comparison"]["n"] == GOLD
    assert len(v1.gold_predictions) == GOLD  # stored on it: the next comparison reads them
    assert {label for _, label in v1.gold_predictions} <= {0, 1, 2}


def _new_labeled_items(project, labeler, count: int) -> list[Item]:
    items = []
    for i in range(count):
        text = f"a later review number {i}"
        item = Item.objects.create(project=project, raw_text=text, text=text, annotation_count=1,
                                   content_hash=hashlib.sha256(text.encode()).hexdigest())
        Annotation.objects.create(item=item, labeler=labeler, label=LABELS[i % 3])
        items.append(item)
    return items


def test_without_enough_gold_the_validation_items_neither_trained_on_decide(
    project, labeler, monkeypatch, tiny_model
):
    add_labeled_items(project, labeler)  # 24 items, no gold
    v1 = _train(project, monkeypatch, tiny_model, _always_negative)
    assert v1.activation["reason"] == "activated: no version was active"
    _new_labeled_items(project, labeler, 36)
    # the run's validation split (indices of its 60 labels in item order): the 36 items v1
    # never saw, and 6 it trained on, which are left out
    v2 = _train(project, monkeypatch, tiny_model, _always_negative,
                val_indices=list(range(18, 60)))
    decision = v2.activation
    assert decision["on"] == "validation" and decision["compared_with"] == 1
    assert decision["comparison"]["n"] == 36
    assert "on the same 36 validation items neither trained on" in decision["reason"]


def test_with_too_few_items_to_compare_the_version_is_activated_and_says_so(
    project, labeler, monkeypatch, tiny_model
):
    add_labeled_items(project, labeler, gold=6)
    _train(project, monkeypatch, tiny_model, _always_negative)
    _relabel(project)
    v2 = _train(project, monkeypatch, tiny_model, _always_negative, val_indices=[0, 1, 2])
    assert v2.is_active and v2.activation["activated"] and v2.activation["on"] == ""
    assert v2.activation["reason"] == ("activated without a comparison: only 6 gold items and 0 "
                                       "validation items v1 did not train on (30 needed)")


def test_an_active_version_that_cannot_be_run_does_not_block_the_new_one(
    project, gold, monkeypatch, tiny_model
):
    add_version(project, 1, active=True, files=False)  # its files are gone
    v2 = _train(project, monkeypatch, tiny_model, _right(gold))
    assert v2.is_active
    assert v2.activation["reason"] == ("activated without a comparison: v1 could not be run "
                                       "(the details are in the worker's log)")


def test_an_active_version_with_other_labels_is_not_compared(project, gold, monkeypatch,
                                                              tiny_model):
    v1 = add_version(project, 1, active=True)
    ModelVersion.objects.filter(id=v1.id).update(label_names=["bad", "good"])
    v2 = _train(project, monkeypatch, tiny_model, _always_negative)
    assert v2.is_active and "v1 has other labels" in v2.activation["reason"]


# --- after a refusal -------------------------------------------------------------------------


@pytest.fixture
def refused(project, gold, monkeypatch, tiny_model):
    _train(project, monkeypatch, tiny_model, _right(gold))
    _relabel(project)
    version = _train(project, monkeypatch, tiny_model, _always_negative)
    assert not version.is_active
    return version


def test_a_refused_version_is_not_trained_again_on_the_same_labels(project, refused):
    with pytest.raises(svc.NothingNewToLearn) as nothing:
        svc.training_request(project=project, trigger="manual")
    assert nothing.value.version == refused
    with mock.patch.object(svc, "project_retrain_due", return_value=True):
        assert svc.retrain_due_projects() == []
    assert not TrainingRun.objects.filter(status="queued").exists()


def test_the_schedule_applies_the_same_rule(project, gold, monkeypatch, tiny_model):
    _train(project, monkeypatch, tiny_model, _right(gold))
    _relabel(project)
    monkeypatch.setattr("trainer.train.train", fake_train_copying(tiny_model,
                                                                  predict=_always_negative))
    with mock.patch.object(svc, "project_retrain_due", return_value=True):
        (run_id,) = svc.retrain_due_projects()
    from annotator.tasks import train_project_task

    version = ModelVersion.objects.get(id=train_project_task(run_id))
    assert version.training_run.trigger == "schedule" and not version.is_active
    assert version.activation["reason"].startswith("not activated: macro-F1")


def test_the_registry_shows_why_and_offers_activate_anyway(admin_client, project, refused):
    body = admin_client.get(reverse("model_registry", args=[project.id])).content.decode()
    assert "(not activated)" in body and "Activate anyway" in body
    assert refused.activation["reason"] in body and "worse beyond noise" in body


def test_activate_anyway_activates_it_and_records_who(lead_client, lead, project, refused):
    url = reverse("version_activate", args=[project.id, refused.id])
    response = lead_client.post(url, follow=True)
    refused.refresh_from_db()
    assert refused.is_active
    assert refused.activation["forced_by"] == lead.username and refused.activation["forced_at"]
    assert refused.activation["activated"] is False  # what the rule said stays on record
    body = response.content.decode()
    assert "now active anyway" in body and f"activated anyway by {lead.username}" in body


def test_labelers_and_other_teams_cannot_activate_anyway(project, refused, labeler_client, client,
                                                         other_lead):
    url = reverse("version_activate", args=[project.id, refused.id])
    assert labeler_client.post(url).status_code == 403
    client.force_login(other_lead)
    assert client.post(url).status_code == 403
    refused.refresh_from_db()
    assert not refused.is_active and "forced_by" not in refused.activation


def test_activate_anyway_needs_post_and_a_csrf_token(project, refused, lead):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(lead)
    url = reverse("version_activate", args=[project.id, refused.id])
    assert strict.get(url).status_code == 405
    assert strict.post(url).status_code == 403
    refused.refresh_from_db()
    assert not refused.is_active


def test_the_api_lists_the_reason_and_activates_anyway(project, refused, lead, labeler):
    api = token_client(lead)
    rows = api.get(reverse("api_versions", args=[project.id])).json()
    by_number = {row["number"]: row for row in rows}
    assert by_number[2]["not_activated_reason"] == refused.activation["reason"]
    assert by_number[2]["activation"]["activated"] is False and not by_number[2]["active"]
    assert by_number[1]["not_activated_reason"] == "" and by_number[1]["active"]
    url = reverse("api_version_activate", args=[project.id, refused.id])
    assert token_client(labeler).post(url).status_code == 403
    answer = api.post(url).json()
    assert answer["active"] and answer["activation"]["forced_by"] == lead.username


def test_rolling_back_to_an_activated_version_records_no_force(project, refused, lead):
    v1 = ModelVersion.objects.get(project=project, version=1)
    svc.model_version_activate(version=refused, user=lead)
    svc.model_version_activate(version=v1, user=lead)
    v1.refresh_from_db()
    assert v1.is_active and "forced_by" not in v1.activation


# --- real fine-tunes ---------------------------------------------------------------------------


def _real_gold(project):
    """48 gold reviews: the tiny texts said another way."""
    from tests.trainer.tiny import TEXTS

    for label, texts in TEXTS.items():
        for text in texts:
            for said in (f"honestly, {text}", f"{text}, really"):
                Item.objects.create(project=project, raw_text=said, text=said,
                                    split=Item.Split.GOLD, gold_label=label,
                                    content_hash=hashlib.sha256(said.encode()).hexdigest())


def _invert(project):
    """Positive and negative swapped on every label: a model that learns the opposite."""
    swap = {"positive": "negative", "negative": "positive"}
    for annotation in Annotation.objects.filter(item__project=project, label__in=swap):
        annotation.label = swap[annotation.label]
        annotation.save()


@pytest.mark.slow
def test_a_badly_trained_version_is_not_served_and_a_good_one_is(project, labeler, lead,
                                                                  settings):
    settings.TRAINING_OVERRIDES = {"model_name": "all-MiniLM-L6-v2", "max_steps": 2,
                                   "batch_size": 8, "num_threads": 1, "val_fraction": 0,
                                   "max_length": 32}
    add_labeled_items(project, labeler)
    _real_gold(project)
    call_command("retrain", str(project.id))
    v1 = ModelVersion.objects.get(is_active=True)
    assert v1.metrics["support"] == 48

    _invert(project)
    call_command("retrain", str(project.id))
    bad = ModelVersion.objects.get(version=2)
    assert not bad.is_active and bad.activation["reason"].startswith("not activated: macro-F1")
    assert bad.activation["comparison"]["new_macro_f1"] < v1.metrics["macro_f1"] - 0.3
    predict = reverse("api_predict", args=[project.id])
    answer = token_client(lead).post(predict, {"texts": ["love these shoes"]}, format="json")
    assert answer.status_code == 200 and answer.json()["model_version"] == 1

    _invert(project)  # the right labels again
    call_command("retrain", str(project.id), "--force")
    good = ModelVersion.objects.get(version=3)
    assert good.is_active and good.activation["reason"].startswith("activated: macro-F1")
    answer = token_client(lead).post(predict, {"texts": ["love these shoes"]}, format="json")
    assert answer.json()["model_version"] == 3
