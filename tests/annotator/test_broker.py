"""The embedded broker (annotator/lib/broker.py): a message file is visible only when whole."""

import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from kombu import Connection

from annotator.lib import broker


@pytest.fixture
def folders(tmp_path):
    for sub in ("queue", "processed", "control"):
        (tmp_path / sub).mkdir()
    return {"data_folder_in": str(tmp_path / "queue"), "data_folder_out": str(tmp_path / "queue"),
            "processed_folder": str(tmp_path / "processed"),
            "control_folder": str(tmp_path / "control"), "store_processed": False}


def _channel(folders, transport):
    return Connection("filesystem://", transport=transport,
                      transport_options=folders).default_channel


def test_kombus_own_reader_dies_on_a_message_file_not_yet_written(folders):
    """The race: upstream creates the file under its final name, then writes it."""
    channel = _channel(folders, "filesystem")
    open(os.path.join(folders["data_folder_in"], "1_x.ranking.msg"), "wb").close()
    with pytest.raises(json.JSONDecodeError):
        channel._get("ranking")


def test_a_message_appears_under_its_name_only_when_written(folders):
    channel = _channel(folders, "annotator.lib.broker:Transport")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(sorted(os.listdir(folders["data_folder_in"])))
        return real_replace(src, dst)

    with mock.patch("annotator.lib.broker.os.replace", side_effect=replace):
        channel._put("ranking", {"body": "hello"})
    assert len(seen) == 1 and all(name.endswith(broker.PARTIAL_SUFFIX) for name in seen[0])
    assert channel._get("ranking") == {"body": "hello"}  # the reader takes the whole message


def test_every_message_goes_through_once(folders):
    from queue import Empty

    channel = _channel(folders, "annotator.lib.broker:Transport")
    for i in range(30):
        channel._put("ranking", {"n": i})
    got = [channel._get("ranking")["n"] for _ in range(30)]
    assert sorted(got) == list(range(30))
    with pytest.raises(Empty):
        channel._get("ranking")
    assert not os.listdir(folders["data_folder_in"])


def test_the_embedded_default_uses_it(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL")}
    env.update(DEBUG="1", ANNOTATOR_VAR_DIR=str(tmp_path),
               DJANGO_SETTINGS_MODULE="annotator.settings")
    code = ("import django; django.setup(); from annotator.celery import app; "
            "print(app.connection_for_write().transport_cls)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "annotator.lib.broker:Transport"


def _write_busy(folders, n):
    """Put n messages from a process whose other threads hold the GIL (as a web process's
    do): upstream's writer is often paused between creating a file and writing it."""
    import threading

    def spin():
        while True:
            sum(range(1000))

    for _ in range(3):
        threading.Thread(target=spin, daemon=True).start()
    channel = _channel(folders, "annotator.lib.broker:Transport")
    for i in range(n):
        channel._put("ranking", {"n": i, "pad": "x" * 2000})
    os._exit(0)


def test_a_reader_racing_a_busy_writer_never_gets_a_partial_message(folders):
    import multiprocessing
    from queue import Empty

    n = 200
    writer = multiprocessing.get_context("fork").Process(target=_write_busy, args=(folders, n))
    writer.start()
    channel = _channel(folders, "annotator.lib.broker:Transport")
    got = []
    while len(got) < n:
        try:
            got.append(channel._get("ranking")["n"])
        except Empty:
            if not writer.is_alive() and not os.listdir(folders["data_folder_in"]):
                break
    writer.join(timeout=60)
    assert sorted(got) == list(range(n))
