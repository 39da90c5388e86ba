"""Quiet logs: a 403 or 404 is one line in the server log, and a Celery worker prints no
progress bars (it would log each redraw as a warning)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def _request_records(caplog):
    return [r for r in caplog.records if r.name == "django.request"]


def test_a_403_is_logged_as_one_line_without_a_traceback(labeler_client, project, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert labeler_client.get(reverse("model_registry", args=[project.pk])).status_code == 403
    [record] = _request_records(caplog)
    assert record.getMessage().startswith("Forbidden (Permission denied)")
    assert record.exc_info is None and record.exc_text is None


def test_a_404_is_logged_without_a_traceback(labeler_client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert labeler_client.get(reverse("my_labels", args=[999_999])).status_code == 404
    assert all(record.exc_info is None for record in _request_records(caplog))


def test_a_server_error_keeps_its_traceback():
    from annotator.settings import _one_line_below_500

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("django.request", logging.ERROR, __file__, 1,
                                   "Internal Server Error: /", (), sys.exc_info())
    record.status_code = 500
    assert _one_line_below_500(record) and record.exc_info is not None


def test_a_worker_disables_progress_bars_before_its_pool_starts(tmp_path):
    script = ("from celery.signals import worker_init\n"
              "import annotator.celery\n"
              "worker_init.send(sender=None)\n"
              "from tqdm import tqdm\n"
              "from transformers.utils import logging\n"
              "print(tqdm(range(3)).disable, logging.is_progress_bar_enabled())\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANNOTATOR_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "tests.settings", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]
    assert "it/s" not in result.stderr
