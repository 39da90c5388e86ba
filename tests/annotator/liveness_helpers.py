"""A job's process mark held from another thread (and its own database connection), as the
process that runs the job holds it (annotator/services/liveness.py)."""

import threading
from contextlib import contextmanager

from django.db import connection

from annotator.services.liveness import process_mark


@contextmanager
def mark_held(kind: str, pk: int):
    held, release = threading.Event(), threading.Event()

    def hold():
        try:
            with process_mark(kind, pk):
                held.set()
                release.wait(60)
        finally:
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(30), "the mark could not be taken"
    try:
        yield
    finally:
        release.set()
        thread.join(30)
