"""A process started without its database, broker or object store stops at once, saying which
(`manage.py check_services`, run by docker/entrypoint.sh before every container's process)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections

from annotator.lib import readiness

ROOT = Path(__file__).resolve().parents[2]
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there


def _check(tmp_path, command=("manage.py", "check_services"), **env) -> subprocess.CompletedProcess:
    """manage.py check_services in a fresh process (its own settings from `env`)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "CELERY_", "ARTIFACT_", "TEST_DATABASE"))}
    base.update(DJANGO_SETTINGS_MODULE="annotator.settings", SECRET_KEY="nMBTckHsgyFb8QtTtmPcs5sI4tPYY5rolOfRvATSkOL00s8xLZjyJUiHJf3gTb7-v6w",
                ANNOTATOR_VAR_DIR=str(tmp_path / "var"),
                DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                AWS_MAX_ATTEMPTS="1", AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    base.update(env)
    base = {k: v for k, v in base.items() if v is not None}
    return subprocess.run([sys.executable, *command], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=120)


def test_a_process_with_everything_reachable_starts(tmp_path):
    result = _check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "database, broker and object store answer"


@pytest.mark.parametrize("env, named", [
    ({"DATABASE_URL": f"postgres://annotator:hunter2@{CLOSED}/annotator"},
     "the database is not reachable (postgresql at 127.0.0.1:9/annotator, DATABASE_URL)"),
    ({"CELERY_BROKER_URL": f"redis://:hunter2@{CLOSED}/0"},
     "the broker is not reachable (redis://:***@127.0.0.1:9/0, CELERY_BROKER_URL)"),
    ({"ARTIFACT_STORAGE_BACKEND": "storages.backends.s3.S3Storage",
      "ARTIFACT_STORAGE_OPTIONS": f'{{"bucket_name": "models", "endpoint_url": "http://{CLOSED}"}}'},
     "the object store is not reachable (S3Storage, bucket 'models' at http://127.0.0.1:9, "
     "ARTIFACT_STORAGE_OPTIONS)"),
])
def test_a_process_without_one_of_them_stops_with_one_line_naming_it(tmp_path, env, named):
    result = _check(tmp_path, **env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cannot start: {named}: "), result.stderr
    assert "hunter2" not in result.stderr and result.stdout == ""


def test_settings_that_do_not_load_stop_the_container_with_one_line_too(tmp_path):
    entrypoint = ("-m", "annotator.lib.readiness")  # what docker/entrypoint.sh runs
    assert _check(tmp_path, entrypoint).returncode == 0
    result = _check(tmp_path, entrypoint, SECRET_KEY=None)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "cannot start: the settings do not load: SECRET_KEY is required when DEBUG is off "
        f"(set the SECRET_KEY environment variable, or write one to {tmp_path}/var/secret_key); "
        "make one with: python -c 'import secrets; print(secrets.token_urlsafe(50))' "
        "(bin/up writes such a key to var/secret_key when none is set)"]


@pytest.fixture
def unreachable_database():
    """A database alias with the test database's settings, pointed where nothing answers."""
    db = dict(connections.settings["default"])
    if db["ENGINE"].endswith("sqlite3"):
        db["NAME"] = "/nonexistent-folder/annotator.sqlite3"
    else:
        db.update(HOST="127.0.0.1", PORT="9")
    connections.settings["unreachable"] = db
    yield "unreachable"
    del connections.settings["unreachable"]


def test_the_database_probe_answers_for_the_configured_database(db, unreachable_database):
    assert readiness.database_problem() is None
    assert readiness.database_problem(unreachable_database).startswith(
        "the database is not reachable")


def test_a_missing_bucket_is_named_and_init_can_create_it(s3_artifacts):
    s3_artifacts.bucket.objects.all().delete()
    s3_artifacts.bucket.delete()
    problem = readiness.object_store_problem(s3_artifacts)
    assert "bucket 'annotator-tests'" in problem and "NoSuchBucket" in problem
    assert readiness.object_store_create_bucket(s3_artifacts) is True
    assert readiness.object_store_problem(s3_artifacts) is None
    assert readiness.object_store_create_bucket(s3_artifacts) is False  # there already
