"""How services start background work: by the task's name, never by importing annotator.tasks.

Tasks are the outer layer: annotator.tasks imports the services it runs. A service that
needs a task enqueued names it ("annotator.tasks.score_pool_task", the same string as in
CELERY_TASK_ROUTES and the beat schedule), so the import graph has no circle
(docs/architecture.md). The task object comes from the Celery app's registry, the same
object annotator.tasks defines: `.delay` on it honours CELERY_TASK_ALWAYS_EAGER, and a
test that patches `annotator.tasks.<name>.delay` sees the call.
"""

import importlib

from django.db import transaction

from annotator.celery import app


def task(name: str):
    """The registered task called `name` ("<module>.<function>"). A web process may not have
    imported the task module yet: it is imported here, by name, the first time."""
    if name not in app.tasks:
        importlib.import_module(name.rpartition(".")[0])
    return app.tasks[name]


def enqueue(name: str, *args, countdown: float = 0) -> None:
    """Send task `name` with `args` now (callers already inside an on_commit callback), to
    run at once or after `countdown` seconds."""
    if countdown:
        task(name).apply_async(args, countdown=countdown)
    else:
        task(name).delay(*args)


def enqueue_on_commit(name: str, *args, countdown: float = 0) -> None:
    """Send task `name` with `args` once the current transaction commits (at once outside
    one): a rolled-back request starts no job."""
    transaction.on_commit(lambda: enqueue(name, *args, countdown=countdown))
