"""Is the process that runs a job still alive?

While it works, the process holds a lock that the system releases the moment the process
dies: a PostgreSQL session advisory lock (held by its database connection, so it works across
machines), or on the embedded default a file lock in VAR_DIR (SQLite runs on one machine).
Another process tries the same lock: free means the owner is gone. A heartbeat only says so
after minutes of silence; this says it at once.
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

KINDS = {"import": 1}  # the first key of PostgreSQL's two-key advisory locks


def _pg_key(kind: str, pk: int) -> tuple[int, int]:
    return KINDS[kind], int(pk) % 2**31


def _lock_file(kind: str, pk: int) -> Path:
    return Path(settings.VAR_DIR) / "locks" / f"{kind}-{int(pk)}.lock"


@contextmanager
def process_mark(kind: str, pk: int) -> Iterator[None]:
    """Hold the mark of job `pk` while the block runs (see the module docstring)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", _pg_key(kind, pk))
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _pg_key(kind, pk))
        return
    path = _lock_file(kind, pk)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def process_alive(kind: str, pk: int) -> bool:
    """Whether some process holds the mark of job `pk` right now."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", _pg_key(kind, pk))
            free = cursor.fetchone()[0]
            if free:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _pg_key(kind, pk))
        return not free
    try:  # read-only: a check never creates a lock file
        handle = open(_lock_file(kind, pk))  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
