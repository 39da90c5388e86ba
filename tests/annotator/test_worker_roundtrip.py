"""A real Celery task through the configured broker to a real worker process."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from annotator.tasks import ping


def test_ci_runs_on_the_real_services(db):
    if not os.environ.get("ANNOTATOR_REQUIRE_SERVICES"):
        pytest.skip("only asserted where CI asks for the real services")
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")


@pytest.fixture
def worker():
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "annotator", "worker", "--pool", "solo",
         "-Q", "default", "--hostname", f"roundtrip-{os.getpid()}@%h", "--loglevel", "WARNING"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_task_runs_in_a_separate_worker_process(worker):
    result = ping.delay("hello")
    answer = result.get(timeout=120)
    assert answer["payload"] == "hello"
    assert answer["pid"] == worker.pid
    assert answer["pid"] != os.getpid()
