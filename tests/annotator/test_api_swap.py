"""Activating another version while threads hammer the prediction API drops nothing."""

import threading
import time

import pytest
from django.db import connection

from annotator.api.predict import PredictThrottle
from annotator.ml import serving
from annotator.services.training import model_version_activate
from tests.annotator.serving_helpers import add_version, token_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THREADS = 4


def _wait_until(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_version_swap_under_concurrent_requests_drops_nothing(project, labeler, monkeypatch):
    monkeypatch.setattr("annotator.services.training.on_model_activated", lambda version: None)
    # as many requests as the machine answers: not what the per-user rate limit is for
    monkeypatch.setattr(PredictThrottle, "THROTTLE_RATES", {"predict": None})
    add_version(project, 1, active=True)
    v2 = add_version(project, 2)
    serving.clear()
    url = f"/api/projects/{project.id}/predict"
    body = {"texts": ["love these shoes", "broke after a day", "it is okay"]}
    swapped = threading.Event()  # set once some response came from version 2
    stop = threading.Event()
    seen: list[list[tuple[bool, int, int | None]]] = [[] for _ in range(THREADS)]

    def hammer(log):
        client = token_client(labeler)
        try:
            while not stop.is_set():
                after_swap = swapped.is_set()
                response = client.post(url, body, format="json")
                ok = response.status_code == 200
                version = response.json()["model_version"] if ok else None
                log.append((after_swap, response.status_code, version))
                if version == 2:
                    swapped.set()
        finally:
            connection.close()

    token_client(labeler)  # create the token before the threads race for it
    threads = [threading.Thread(target=hammer, args=(log,), daemon=True) for log in seen]
    for thread in threads:
        thread.start()
    try:
        _wait_until(lambda: all(len(log) >= 3 for log in seen))  # all answered with version 1
        model_version_activate(version=v2)
        assert swapped.wait(timeout=120), "version 2 never answered"
        counts = [len(log) for log in seen]
        _wait_until(lambda: all(len(log) >= n + 3 for log, n in zip(seen, counts, strict=True)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    responses = [entry for log in seen for entry in log]
    assert {status for _, status, _ in responses} == {200}
    assert {version for _, _, version in responses} == {1, 2}
    assert all(version == 2 for after, _, version in responses if after)
    for log in seen:  # per thread: 1, 1, ..., 2, 2 and never back
        versions = [version for _, _, version in log]
        assert versions == sorted(versions)
