"""services.liveness: a job's process mark is held while its process lives and is free the
moment it dies (SIGKILL included), on PostgreSQL (advisory lock) and SQLite (file lock)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from annotator.services.liveness import process_alive, process_mark

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time, django; django.setup()
from annotator.services.liveness import process_mark
with process_mark("import", int(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


@pytest.mark.django_db(transaction=True)
def test_a_mark_is_alive_while_its_process_lives_and_free_once_it_is_killed():
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=_database_url(),
               PYTHONPATH=str(ROOT))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "42"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert process_alive("import", 42)
        assert not process_alive("import", 43)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 30  # PostgreSQL notices the closed socket
    while process_alive("import", 42) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive("import", 42)


@pytest.mark.django_db(transaction=True)
def test_a_mark_is_free_after_its_block_and_a_check_takes_nothing():
    with process_mark("import", 7):
        pass
    assert not process_alive("import", 7)
    assert not process_alive("import", 7)  # checking twice: the check held nothing
