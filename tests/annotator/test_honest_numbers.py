"""Honest numbers: metrics carry their n and say when they are unreliable; a retrain with
nothing new to learn says so; a finished run's status line says it is finished."""

from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.staticfiles import finders
from django.core.files.storage import storages
from django.urls import reverse
from django.utils import timezone

from annotator.models import Annotation, Item, ModelVersion, TrainingRun
from annotator.services import training as svc
from annotator.services.labeling import annotation_change
from tests.annotator.labeling_factories import make_item
from tests.annotator.training_helpers import add_labeled_items
from trainer.evaluate import MIN_RELIABLE_GOLD, MIN_RELIABLE_PER_CLASS, metrics_reliability

NAMES = ["negative", "neutral", "positive"]


def _metrics(supports: dict[str, int], *, on: str = "gold", score: float = 1.0) -> dict:
    return {"macro_f1": score, "accuracy": score, "evaluated_on": on,
            "support": sum(supports.values()), "labels": NAMES,
            "per_class": {name: {"precision": score, "recall": score, "f1": score,
                                 "support": supports.get(name, 0)} for name in NAMES}}


ONE_ITEM = _metrics({"positive": 1}, on="validation")
PLENTY = _metrics({"negative": 20, "neutral": 10, "positive": 30}, score=0.8)


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        yield delay


def _trained_version(project, *, metrics=None, number=1, started=None) -> ModelVersion:
    """An active version as a finished run leaves it, trained on the labels as they are now."""
    started = started or timezone.now()
    run = TrainingRun.objects.create(project=project, status="succeeded", started_at=started,
                                     finished_at=started)
    return ModelVersion.objects.create(
        project=project, version=number, training_run=run, is_active=True,
        artifact_path=f"projects/{project.pk}/v{number}", label_names=project.label_names,
        metrics=metrics if metrics is not None else PLENTY,
    )


# --- reliability -------------------------------------------------------------------------


def test_one_validation_item_is_not_a_reliable_estimate():
    verdict = metrics_reliability(ONE_ITEM)
    assert verdict["n"] == 1 and verdict["on"] == "validation" and not verdict["reliable"]
    assert f"only 1 evaluation item ({MIN_RELIABLE_GOLD} needed)" in verdict["reason"]


def test_enough_items_of_every_class_make_a_reliable_estimate():
    assert metrics_reliability(PLENTY) == {"n": 60, "on": "gold", "reliable": True, "reason": ""}


def test_a_class_with_too_few_items_makes_the_estimate_unreliable():
    verdict = metrics_reliability(_metrics({"negative": 40, "neutral": 2, "positive": 30}))
    assert not verdict["reliable"]
    assert verdict["reason"] == (f"fewer than {MIN_RELIABLE_PER_CLASS} evaluation items of a "
                                 "class (neutral 2)")


def test_metrics_without_their_n_are_not_taken_on_trust():
    verdict = metrics_reliability({"macro_f1": 0.5, "accuracy": 0.6, "per_class": {}})
    assert verdict["n"] is None and not verdict["reliable"]


def test_the_registry_says_a_tiny_evaluation_is_unreliable_and_shows_every_n(
    admin_client, project
):
    _trained_version(project, metrics=ONE_ITEM, number=1)
    ModelVersion.objects.update(is_active=False)
    _trained_version(project, metrics=PLENTY, number=2)
    body = admin_client.get(reverse("model_registry", args=[project.pk])).content.decode()
    assert "unreliable" in body and "n=1 (validation): unreliable estimate" in body
    assert "only 1 evaluation item" in body
    assert "0.800" in body and "n=60 (gold)" in body
    assert "negative 0.80 (n=20)" in body


def test_a_reliable_version_shows_plain_figures(admin_client, project):
    _trained_version(project, metrics=PLENTY)
    body = admin_client.get(reverse("model_registry", args=[project.pk])).content.decode()
    assert "unreliable" not in body and "0.800" in body, body[body.find("unreliable") - 300:]


def test_the_dashboard_says_a_tiny_evaluation_is_unreliable(admin_client, project):
    _trained_version(project, metrics=ONE_ITEM)
    body = admin_client.get(reverse("insight_dashboard", args=[project.pk])).content.decode()
    assert "unreliable" in body and "only 1 evaluation item" in body
    assert "on validation, n=1" in body and "validation (n=1)" in body


# --- retrain with nothing new --------------------------------------------------------------


@pytest.fixture
def labeled(project, labeler):
    return add_labeled_items(project, labeler)


def test_retrain_now_with_no_new_label_says_so_and_queues_nothing(admin_client, project, labeled):
    version = _trained_version(project)
    response = admin_client.post(reverse("retrain_now", args=[project.pk]), follow=True)
    body = response.content.decode()
    assert f"no label was added, changed or adjudicated since v{version.version}" in body
    assert "Retrain anyway" in body
    assert TrainingRun.objects.count() == 1  # the version's own


def test_retrain_anyway_queues_a_run(admin_client, project, labeled, no_broker,
                                     django_capture_on_commit_callbacks):
    _trained_version(project)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("retrain_now", args=[project.pk]), {"force": "1"})
    run = TrainingRun.objects.get(status="queued")
    no_broker.assert_called_once_with(run.id)


def test_a_new_label_makes_the_retrain_go_ahead(project, labeled, labeler):
    _trained_version(project)
    with pytest.raises(svc.NothingNewToLearn):
        svc.training_request(project=project, trigger="manual")
    item = make_item(project, "A brand-new review")
    Annotation.objects.create(item=item, labeler=labeler, label="positive")
    assert svc.training_request(project=project, trigger="manual").status == "queued"


def test_a_changed_label_makes_the_retrain_go_ahead(project, labeled, labeler):
    _trained_version(project)
    with pytest.raises(svc.NothingNewToLearn):
        svc.training_request(project=project, trigger="manual")
    annotation = Annotation.objects.filter(item__project=project).first()
    other = next(name for name in project.label_names if name != annotation.label)
    annotation_change(labeler=labeler, annotation=annotation, label=other)
    assert svc.training_request(project=project, trigger="manual").status == "queued"


def test_an_adjudication_makes_the_retrain_go_ahead(project, labeled, admin_user):
    _trained_version(project)
    with pytest.raises(svc.NothingNewToLearn):
        svc.training_request(project=project, trigger="manual")
    Item.objects.filter(pk=labeled[0].pk).update(final_label="neutral",
                                                  adjudicated_at=timezone.now())
    assert svc.training_request(project=project, trigger="manual").status == "queued"


def test_labels_given_while_the_version_trained_are_new_to_it(project, labeled):
    _trained_version(project, started=timezone.now() - timedelta(minutes=5))
    assert svc.training_request(project=project, trigger="manual").status == "queued"


def test_a_version_without_a_recorded_run_does_not_block_a_retrain(project, labeled):
    ModelVersion.objects.create(project=project, version=1, is_active=True, artifact_path="v1",
                                label_names=project.label_names)
    assert svc.training_request(project=project, trigger="manual").status == "queued"


def test_a_queued_run_is_returned_rather_than_refused(project, labeled):
    _trained_version(project)
    queued = TrainingRun.objects.create(project=project)
    assert svc.training_request(project=project, trigger="manual") == queued


def test_the_api_answers_409_with_nothing_new_unless_forced(admin_client, project, labeled):
    _trained_version(project)
    url = reverse("api_retrain", args=[project.pk])
    refused = admin_client.post(url)
    assert refused.status_code == 409 and refused.json()["active_version"] == 1
    forced = admin_client.post(url, {"force": True}, content_type="application/json")
    assert forced.status_code == 202 and forced.json()["status"] == "queued"


def test_the_schedule_skips_a_project_with_nothing_new(project, labeled):
    _trained_version(project)
    with mock.patch.object(svc, "project_retrain_due", return_value=True):
        assert svc.retrain_due_projects() == []
    assert not TrainingRun.objects.filter(status="queued").exists()


# --- status lines ---------------------------------------------------------------------------


def _fake_train_ending_in_evaluation(*, texts, labels, label_names, config, output_dir,
                                     eval_texts=None, eval_labels=None, progress=None):
    """Reports steps, then "evaluating" (as trainer.train does), then writes a model file."""
    from pathlib import Path

    from trainer.train import TrainResult

    step = {"epoch": 1, "epochs": 1, "step": 2, "total_steps": 2, "loss": 0.5}
    progress(step)
    progress({**step, "phase": "evaluating"})
    # a name no real model has: artifacts outlive the test (its ids come back in the next)
    (Path(output_dir) / "fake-weights.bin").write_text("fake")
    return TrainResult(metrics=PLENTY, val_metrics={}, device="cpu", num_train=len(texts),
                       config={"resolved_model": "fake", "max_length": 32})


def test_a_finished_run_no_longer_says_evaluating(admin_client, project, labeled, monkeypatch):
    monkeypatch.setattr("trainer.train.train", _fake_train_ending_in_evaluation)
    run = TrainingRun.objects.create(project=project)
    version = svc.training_run_execute(run_id=run.id)
    storages["artifacts"].delete(f"{version.artifact_path}/fake-weights.bin")
    state = admin_client.get(reverse("training_progress", args=[project.pk])).json()
    assert state["status"] == "succeeded" and "phase" not in state["progress"]
    assert state["progress"]["step"] == 2


def test_the_status_line_shows_a_phase_only_while_running(admin_client, project):
    body = admin_client.get(reverse("model_registry", args=[project.pk])).content.decode()
    assert "annotator/training.js" in body  # the page's script, a static file (CSP)
    script = Path(finders.find("annotator/training.js")).read_text(encoding="utf-8")
    assert 'if (p.phase && s.status === "running")' in script
