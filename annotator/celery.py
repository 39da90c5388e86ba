import os

from celery import Celery
from celery.signals import worker_init

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
