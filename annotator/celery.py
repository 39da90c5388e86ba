import logging
import os

from celery import Celery
from celery.signals import task_failure, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")

app = Celery("annotator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def quiet_progress_bars(**_kwargs) -> None:
    """No tqdm bars in a worker: it logs what tasks write to stderr as warnings, one line per
    redraw (transformers' "Loading weights", tokenizers). Before the pool forks, so every
    child inherits it; TQDM_DISABLE=0 in the environment brings them back."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@task_failure.connect
def record_background_failure(sender=None, args=None, exception=None, **_kwargs) -> None:
    """A task that raised says so on its project's pages (services/background_failures.py);
    the traceback stays in this worker's log."""
    from django.db import close_old_connections

    from annotator.services.background_failures import failure_record

    try:
        failure_record(task=sender.name, args=args or (), exc=exception)
    except Exception:  # noqa: BLE001 - recording must never hide the task's own failure
        logging.getLogger(__name__).exception("could not record the failure of %s", sender.name)
        close_old_connections()
