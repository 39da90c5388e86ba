"""Failure injection: `manage.py import_items` killed (SIGKILL) or interrupted (SIGINT)
mid-file, in its own process against its own SQLite file."""

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
from annotator.models import Project
Project.objects.create(name="Shop")
"""

SWEEP = """
import django; django.setup()
from annotator.services.importing import import_jobs_sweep
print(import_jobs_sweep())
"""


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'import.sqlite3'}",
        ANNOTATOR_VAR_DIR=str(tmp_path / "var"),
        ANNOTATOR_IMPORT_BATCH_SIZE="20",
        ANNOTATOR_IMPORT_STALE_SECONDS="1",
        PYTHONPATH=str(ROOT),
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


def _query(tmp_path, sql):
    with sqlite3.connect(tmp_path / "import.sqlite3", timeout=30) as db:
        return db.execute(sql).fetchall()


def _start_import(tmp_path, env):
    subprocess.run([sys.executable, "-c", SETUP], env=env, cwd=ROOT, check=True)
    big = tmp_path / "big.csv"
    big.write_text("text\n" + "".join(f"review {i} of a long file\n" for i in range(200_000)))
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "import_items", "Shop", str(big), "--no-progress"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell that runs the suite in the background (nohup, `&`) passes SIGINT on ignored,
        # and Python then installs no Ctrl-C handler: give the child a terminal's default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        staged = _query(tmp_path, "SELECT count(*) FROM annotator_item WHERE staged")
        if staged and staged[0][0] >= 100:
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the import never started writing")


def test_a_killed_import_is_marked_failed_and_its_rows_are_deleted(tmp_path):
    env = _env(tmp_path)
    proc = _start_import(tmp_path, env)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _query(tmp_path, "SELECT status FROM annotator_importjob") == [("running",)]
    assert _query(tmp_path, "SELECT count(*) FROM annotator_item WHERE NOT staged") == [(0,)]

    # no waiting for ANNOTATOR_IMPORT_STALE_SECONDS: its process mark is free at once
    subprocess.run([sys.executable, "-c", SWEEP], env=env, cwd=ROOT, check=True)
    [(status, error)] = _query(tmp_path, "SELECT status, error FROM annotator_importjob")
    assert status == "failed" and error.startswith("the import stopped: its process was killed")
    assert _query(tmp_path, "SELECT count(*) FROM annotator_item") == [(0,)]


PUSH = """
import json, sys, django; django.setup()
from annotator.models import Project
from annotator.services.items import items_push
result = items_push(project=Project.objects.get(), rows=[{"text": sys.argv[1]}])
print(json.dumps(result.rows))
"""

RUN_JOB = """
import django; django.setup()
from annotator.models import ImportJob, Project
from annotator.services.importing import import_job_run
job = ImportJob.objects.create(project=Project.objects.get(), filename="big.csv",
                               status="queued", upload_path=__import__("sys").argv[1],
                               options={"fmt": "csv", "encoding": None})
import_job_run(job_id=job.pk)
"""


def test_a_push_of_a_killed_imports_text_does_not_wait_for_the_sweep(tmp_path):
    """The killed import's staged copy of the text blocked pushes (409) until the sweep, up
    to minutes later; its process mark tells at once that nobody is writing it."""
    env = {**_env(tmp_path), "ANNOTATOR_IMPORT_STALE_SECONDS": "3600"}
    proc = _start_import(tmp_path, env)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    pushed = subprocess.run([sys.executable, "-c", PUSH, "review 5 of a long file"], env=env,
                            cwd=ROOT, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert '"status": "created"' in pushed.stdout
    [(status, error)] = _query(tmp_path, "SELECT status, error FROM annotator_importjob")
    assert status == "failed" and "killed or died" in error


def test_a_killed_uploads_file_is_deleted_when_it_is_swept(tmp_path):
    env = {**_env(tmp_path), "ANNOTATOR_IMPORT_STALE_SECONDS": "3600"}
    subprocess.run([sys.executable, "-c", SETUP], env=env, cwd=ROOT, check=True)
    upload = tmp_path / "var" / "uploads" / "big.csv"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text("text\n" + "".join(f"review {i} of an upload\n" for i in range(200_000)))
    proc = subprocess.Popen([sys.executable, "-c", RUN_JOB, str(upload)], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not _query(tmp_path, "SELECT count(*) FROM annotator_item WHERE staged")[0][0]:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert upload.exists()
    subprocess.run([sys.executable, "-c", SWEEP], env=env, cwd=ROOT, check=True)
    assert not upload.exists()
    assert _query(tmp_path, "SELECT status FROM annotator_importjob") == [("failed",)]
    assert _query(tmp_path, "SELECT count(*) FROM annotator_item") == [(0,)]


def test_ctrl_c_stops_the_import_cleanly(tmp_path):
    env = _env(tmp_path)
    proc = _start_import(tmp_path, env)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "interrupted: nothing was imported" in stderr
    [(status, error)] = _query(tmp_path, "SELECT status, error FROM annotator_importjob")
    assert status == "failed" and error.startswith("interrupted (Ctrl-C")
    assert _query(tmp_path, "SELECT count(*) FROM annotator_item") == [(0,)]
