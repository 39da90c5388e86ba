"""Failure injection: a training process killed with SIGKILL mid-run.

Runs real `manage.py retrain`-style processes against their own SQLite file, so it works
whatever database the rest of the suite uses.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

SETUP = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
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
