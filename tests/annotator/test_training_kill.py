"""Failure injection: a training process killed with SIGKILL mid-run.

A `manage.py retrain`-style process runs against its own SQLite file; real Celery workers
run against the test database and the test settings' broker (filesystem or Redis).
"""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.db import connection
from django.utils import timezone

from annotator.celery import app
from annotator.models import ModelVersion, TrainingRun
from annotator.services.training import retrain_due_projects, training_request
from tests.annotator.training_helpers import add_labeled_items

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

SETUP = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from annotator.celery import app
from annotator.models import ModelVersion, Project
from tests.annotator.training_helpers import add_labeled_items
project = Project.objects.create(name="Killed")
add_labeled_items(project, get_user_model().objects.create_user("lena"))
ModelVersion.objects.create(project=project, version=1, is_active=True, artifact_path="old/v1")
"""

RETRAIN = """
import sys, django; django.setup()
from django.conf import settings
settings.TRAINING_OVERRIDES = dict(max_length=32, batch_size=8, num_threads=1, val_fraction=0,
                                   epochs=int(sys.argv[1]), max_steps=int(sys.argv[2]))
from django.core.management import call_command
call_command("retrain", "Killed")
"""


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'kill.sqlite3'}",
        ANNOTATOR_VAR_DIR=str(tmp_path / "var"),
        ANNOTATOR_TRAINING_STALE_SECONDS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def _query(tmp_path, sql):
    with sqlite3.connect(tmp_path / "kill.sqlite3", timeout=30) as db:
        return db.execute(sql).fetchall()


def test_a_killed_training_keeps_the_active_model_and_the_next_retrain_succeeds(tmp_path):
    env = _env(tmp_path)
    subprocess.run([sys.executable, "-c", SETUP], env=env, cwd=ROOT, check=True)

    doomed = subprocess.Popen([sys.executable, "-c", RETRAIN, "1000", "100000"], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = _query(tmp_path, "SELECT progress FROM annotator_trainingrun")
            if rows and json.loads(rows[0][0]).get("step", 0) >= 1:
                break
            assert doomed.poll() is None, "training process ended before it was killed"
            time.sleep(0.2)
        else:
            pytest.fail("training never reported a step")
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

    active = "SELECT version FROM annotator_modelversion WHERE is_active ORDER BY version"
    assert _query(tmp_path, active) == [(1,)]
    runs = "SELECT status, attempts FROM annotator_trainingrun"
    assert _query(tmp_path, runs) == [("running", 1)]

    time.sleep(2)  # the heartbeat goes stale after 1 s
    done = subprocess.run([sys.executable, "-c", RETRAIN, "1", "2"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    # the dead run was reclaimed and retried (attempt 2), and its model is now active
    assert _query(tmp_path, runs) == [("succeeded", 2)]
    assert _query(tmp_path, active) == [(2,)]
    assert (tmp_path / "var" / "artifacts" / "projects").exists()


# --- a Celery worker killed mid-training ------------------------------------------------

STALE_SECONDS = 2


def _test_database_url() -> str:
    """The URL of the database this test runs on, for worker processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


def _start_worker(hostname: str, **overrides) -> subprocess.Popen:
    """`celery worker -Q training` as deployed (prefork, concurrency 1), in its own process
    group, on the test database, the test settings' broker and the same ANNOTATOR_VAR_DIR."""
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=_test_database_url(),
        ANNOTATOR_TRAINING_STALE_SECONDS=str(STALE_SECONDS),
        ANNOTATOR_TRAINING_OVERRIDES=json.dumps(dict(
            max_length=32, batch_size=8, num_threads=1, val_fraction=0, device="cpu", **overrides
        )),
        PYTHONPATH=str(ROOT),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "annotator", "worker", "-Q", "training",
         "--concurrency", "1", "--hostname", hostname, "--loglevel", "WARNING"],
        env=env, cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _kill_group(worker: subprocess.Popen) -> None:
    """SIGKILL the worker's main process and its pool child: nothing can ack or reject."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def _heartbeat_fresh(run: TrainingRun) -> bool:
    run.refresh_from_db()
    return run.heartbeat_at > timezone.now() - timedelta(seconds=STALE_SECONDS)


def _wait_for(what: str, condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)  # the workers read what this test writes
def test_a_worker_killed_mid_training_is_recovered_by_the_beat_sweep(project, labeler, settings):
    settings.TRAINING_STALE_SECONDS = STALE_SECONDS
    project.model_name = "all-MiniLM-L6-v2"  # the tiny test model's encoder
    project.save()
    add_labeled_items(project, labeler)
    ModelVersion.objects.create(project=project, version=1, is_active=True,
                                artifact_path="old/v1")
    doomed = _start_worker(f"doomed-{os.getpid()}@test", epochs=1000, max_steps=100_000)
    spare = None
    try:
        run = training_request(project=project, trigger=TrainingRun.Trigger.MANUAL)

        def training() -> bool:
            run.refresh_from_db()
            assert doomed.poll() is None, "the worker ended before it was killed"
            return run.status == "running" and run.progress.get("step", 0) >= 1

        _wait_for("a training step in the first worker", training)
        spare_name = f"spare-{os.getpid()}@test"
        spare = _start_worker(spare_name, epochs=1, max_steps=2)
        _wait_for("the spare worker", lambda: app.control.ping([spare_name], timeout=0.5))
        _kill_group(doomed)
        _wait_for("the heartbeat to go stale", lambda: not _heartbeat_fresh(run))

        # Neither broker hands the task back: the filesystem transport deleted the message
        # when the worker took it, Redis keeps it unacked for the 6 h visibility timeout,
        # and reject_on_worker_lost needs a live main process. The run waits, untouched.
        run.refresh_from_db()
        assert (run.status, run.attempts) == ("running", 1)
        active = ModelVersion.objects.filter(is_active=True).values_list("version", flat=True)
        assert list(active) == [1]

        retrain_due_projects()  # what the beat runs every minute: re-enqueues the dead run

        _wait_for("the spare worker to finish the run",
                  lambda: TrainingRun.objects.get(id=run.id).status != "running")
        run.refresh_from_db()
        assert (run.status, run.attempts) == ("succeeded", 2), run.error
    finally:
        _kill_group(doomed)
        if spare is not None:
            _kill_group(spare)

    active = ModelVersion.objects.get(project=project, is_active=True)
    assert active.version == 2 and active.training_run_id == run.id
    assert active.artifact_path.startswith(f"projects/{project.id}/v2-r{run.id}a2-")
    assert storages["artifacts"].exists(f"{active.artifact_path}/config.json")
