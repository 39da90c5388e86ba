"""Celery tasks: take ids, call one service, nothing else."""

from celery import shared_task


@shared_task(name="annotator.tasks.ping")
def ping(payload: str = "pong") -> dict:
    """Round trip check for a worker: answers with its own hostname and process id."""
    import os
    import socket

    return {"payload": payload, "pid": os.getpid(), "host": socket.gethostname()}
