"""A retrain without labels of two classes is refused before any run exists, wherever it is
asked for; and a run that fails says so in a plain sentence (the traceback goes to the log)."""

import importlib
import logging
from unittest import mock

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotator.models import Annotation, TrainingRun
from annotator.services import training as svc
from tests.annotator.training_helpers import add_labeled_items
from tests.trainer.tiny import fake_train_copying


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        yield delay


@pytest.fixture
def only_positive(project, labeler):
    add_labeled_items(project, labeler)
    Annotation.objects.exclude(label="positive").delete()
    return project


ZERO = "training needs labels of at least two classes; it has 0"
ONE = "training needs labels of at least two classes; it has only 'positive' (8 labels)"


def test_the_retrain_button_without_labels_says_why_and_queues_nothing(admin_client, project):
    for force in ("", "1"):
        response = admin_client.post(reverse("retrain_now", args=[project.id]), {"force": force},
                                     follow=True)
        assert f"Nothing queued: {ZERO}." in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_the_retrain_button_with_one_class_names_it(admin_client, only_positive):
    response = admin_client.post(reverse("retrain_now", args=[only_positive.id]), follow=True)
    assert ONE.replace("'", "&#x27;") in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_the_api_refuses_with_409_even_when_forced(admin_client, project, only_positive):
    url = reverse("api_retrain", args=[project.id])
    for body in ({}, {"force": True}):
        response = admin_client.post(url, body, content_type="application/json")
        assert response.status_code == 409
        assert response.json() == {"detail": ONE, "active_version": None}
    assert not TrainingRun.objects.exists()


def test_the_command_refuses_without_queueing(project):
    for extra in ([], ["--enqueue"], ["--force"]):
        with pytest.raises(CommandError, match=f"nothing queued: {ZERO}$"):
            call_command("retrain", str(project.id), *extra)
    assert not TrainingRun.objects.exists()


def test_the_schedule_skips_a_project_of_one_class_and_goes_on(only_positive, other_project,
                                                               labeler):
    add_labeled_items(other_project, labeler)
    with mock.patch.object(svc, "project_retrain_due", return_value=True):
        queued = svc.retrain_due_projects()
    assert list(TrainingRun.objects.values_list("id", "project_id")) == [
        (queued[0], other_project.id)]


def test_a_tie_is_no_class_to_train_on(project, labeler, admin_user):
    """Counts are of consensus labels, as training sees them."""
    add_labeled_items(project, labeler)
    Annotation.objects.exclude(label="positive").delete()
    for annotation in Annotation.objects.all()[:4]:  # 4 ties: "negative" is no consensus
        Annotation.objects.create(item=annotation.item, labeler=admin_user, label="negative")
    with pytest.raises(svc.TooFewClasses, match=r"only 'positive' \(4 labels\)$"):
        svc.training_request(project=project, trigger="manual")


# --- the error a failed run shows ---------------------------------------------------------------


@pytest.fixture
def labeled(project, labeler):
    return add_labeled_items(project, labeler)


SECRET_PATH = "/srv/annotator/var/models/projects/7/v3/model.safetensors"


@pytest.mark.parametrize("error, words", [
    (FileNotFoundError(2, "No such file or directory", SECRET_PATH),
     "a file could not be read or written"),
    (RuntimeError(f"CUDA out of memory while loading {SECRET_PATH}"),
     "the worker ran out of memory"),
    (KeyError(SECRET_PATH), "an unexpected error (KeyError)"),
])
def test_a_failed_run_shows_a_plain_sentence_and_logs_the_traceback(
    admin_client, project, labeled, monkeypatch, tiny_model, caplog, error, words
):
    monkeypatch.setattr("trainer.train.train", fake_train_copying(tiny_model, fail=error))
    run = TrainingRun.objects.create(project=project)
    with caplog.at_level(logging.ERROR, logger="annotator.services.training"):
        assert svc.training_run_execute(run_id=run.id) is None
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == f"training failed: {words}; the details are in the worker's log"
    logged = "\n".join(record.exc_text or "" for record in caplog.records)
    assert "Traceback" in logged and SECRET_PATH in logged
    page = admin_client.get(reverse("model_registry", args=[project.id])).content.decode()
    state = admin_client.get(reverse("training_progress", args=[project.id])).json()
    for shown in (page, state["error"]):
        assert SECRET_PATH not in shown and "Traceback" not in shown and "/srv/" not in shown


def test_labels_gone_between_request_and_run_fail_in_plain_words(project, labeled, monkeypatch,
                                                                 tiny_model):
    monkeypatch.setattr("trainer.train.train", fake_train_copying(tiny_model))
    run = svc.training_request(project=project, trigger="manual")
    Annotation.objects.exclude(label="positive").delete()
    svc.training_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", f"{ONE}.")


def test_the_migration_replaces_stored_tracebacks_with_a_plain_sentence(project):
    migration = importlib.import_module("annotator.migrations.0017_model_version_activation")
    old = TrainingRun.objects.create(project=project, status="failed", error=(
        "ValueError: need labeled examples of at least two classes to train\n\n"
        "Traceback (most recent call last):\n  File \"/srv/annotator/services/training.py\", "
        "line 240, in training_run_execute\n"))
    plain = TrainingRun.objects.create(project=project, status="failed", error=(
        "gave up after 3 attempts: the worker stopped sending heartbeats"))
    migration.plain_run_errors(apps, None)
    old.refresh_from_db()
    plain.refresh_from_db()
    assert old.error == "training failed (ValueError); the details are in the worker's log"
    assert plain.error == "gave up after 3 attempts: the worker stopped sending heartbeats"
