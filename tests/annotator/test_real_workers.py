"""The loop as production runs it: a real `celery worker` subprocess with the prefork pool (its
children are daemonic, forked, and import the tasks themselves), on the configured broker
(Redis in CI, the filesystem broker on the embedded default) and the test database.

Eager tasks and mocked `.delay` hide what only a real worker meets: cleanlab's process pool
crashed every prefork child ("daemonic processes are not allowed to have children") while the
suite stayed green. Here one admin retrain runs the chain that follows it in the worker, fine-
tune, evaluation, activation, pool scoring, ranking, the label review; then pushed items are
predicted, an upload is imported, embedded and re-ranked by the fast loop's head, an alert
fires and its webhook is delivered, and a student of the version is distilled, with no task
failing.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection

from annotator.models import (
    AlertRule,
    Annotation,
    BackgroundFailure,
    HeadFit,
    ImportJob,
    Item,
    LabelFlag,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    WebhookDelivery,
)
from annotator.services import training
from annotator.services.distillation import model_version_distill_request
from annotator.services.items import items_push
from annotator.services.labeling import annotation_submit, item_next_claim
from annotator.services.pool_embeddings import missing_ids
from annotator.tasks import import_file_task
from tests.conftest import PASSWORD

pytestmark = pytest.mark.slow

POSITIVE = ["great fit, love it", "soft fabric and a perfect fit", "excellent quality, very happy",
            "love the colour, fits great", "perfect, would buy again", "very comfortable and warm",
            "great value, looks lovely", "happy with it, fits true to size",
            "beautiful dress, great quality", "love it, perfect for summer",
            "fits perfectly and feels great", "excellent, soft and lovely",
            "so comfortable, love the fit", "great shirt, happy customer",
            "lovely fabric, perfect length", "wonderful, fits great", "perfect gift, she loves it",
            "really great, very soft", "nice and warm, love it", "looks great, good quality",
            "质量很好，非常满意", "很舒服，推荐购买"]
NEGATIVE = ["terrible fit, sent it back", "the zipper broke after a day", "awful quality, thin",
            "cheap fabric, very disappointed", "too small and badly made", "returned it, awful",
            "the seams came apart, terrible", "poor quality, do not buy",
            "shrank after one wash, bad", "the colour faded, disappointed",
            "scratchy and uncomfortable", "broke at once, waste of money",
            "horrible, nothing like the photo", "bad stitching, returned",
            "very poor, fell apart", "uncomfortable and cheap", "worst purchase, awful fit",
            "disappointed, it ripped", "bad smell and thin fabric", "terrible, do not recommend",
            "质量太差了，很失望", "做工粗糙，退货了"]
PLANTED = {POSITIVE[3]: "negative", NEGATIVE[5]: "positive"}  # wrong labels a labeler gave


def _worker_database_url() -> str:
    """The database this test runs on (pytest-django's test database), as a URL."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or ""
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{user}{password}@{host}/{db['NAME']}"


def _queues() -> str:
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return ",".join(sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE}))


def _start_worker(queues: str, log: Path) -> subprocess.Popen:
    """A prefork worker with one child, as bin/up and the containers run it."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": _worker_database_url(),
           "ANNOTATOR_TRAINING_OVERRIDES": json.dumps(
               {"max_steps": 6, "batch_size": 8, "num_threads": 1, "val_fraction": 0}),
           "ANNOTATOR_DISTILL_OVERRIDES": json.dumps(
               {"epochs": 1, "max_steps": 3, "num_threads": 1}),
           "ANNOTATOR_LABEL_REVIEW_MIN_LABELS": "20",
           "ANNOTATOR_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}  # the test's local receiver
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "annotator", "worker", "--pool", "prefork",
             "--concurrency", "1", "-Q", queues, "--hostname", f"prefork-{os.getpid()}@%h",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def purged_broker(transactional_db):
    """No message other tests sent and nobody consumed (their rows are gone)."""
    from annotator.celery import app

    def purge():  # every routed queue (control.purge() empties only the configured ones)
        with app.connection_for_write() as conn:
            for queue in _queues().split(","):
                try:
                    conn.default_channel.queue_purge(queue)
                except Exception:  # noqa: BLE001 - a queue nobody declared yet is empty
                    pass

    purge()
    yield app
    purge()


@pytest.fixture
def prefork_worker(purged_broker, tmp_path):
    """A worker on every queue."""
    log = tmp_path / "worker.log"
    proc = _start_worker(_queues(), log)
    yield proc, log
    _stop(proc)


def _wait_for(what: str, check, log: Path, timeout: float = 420) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection.close()  # a fresh read each time (SQLite WAL snapshots, PG isolation)
        if check():
            return
        if "raised unexpected" in log.read_text():  # a task failed: no use waiting on
            break
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s, or a task failed; worker log:\n"
                         f"{log.read_text()[-6000:]}")


@contextlib.contextmanager
def _receiver():
    """A local HTTP server that keeps the bodies POSTed to it."""
    bodies = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the handler's name
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies, server.port = bodies, server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _finished(job: ImportJob) -> bool:
    job.refresh_from_db()
    return job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED)


def _item(project: Project, text: str, **fields) -> Item:
    return Item.objects.create(project=project, raw_text=text, text=text,
                               content_hash=hashlib.sha256(text.encode()).hexdigest(), **fields)


def test_a_retrain_runs_its_whole_chain_in_a_prefork_worker(prefork_worker):
    proc, log = prefork_worker
    project = Project.objects.create(name="Dresses")
    lena = get_user_model().objects.create_user("lena", password=PASSWORD)
    for n, text in enumerate(POSITIVE[:18] + NEGATIVE[:18]):
        label = PLANTED.get(text, "positive" if text in POSITIVE else "negative")
        item = _item(project, text, annotation_count=1, random_key=n / 100)
        Annotation.objects.create(item=item, labeler=lena, label=label)
    for text in POSITIVE[18:] + NEGATIVE[18:]:
        _item(project, text, split=Item.Split.GOLD,
              gold_label="positive" if text in POSITIVE else "negative")
    pool = [_item(project, f"{text} (pool)", random_key=0.5) for text in
            ["fits well and soft", "it tore, awful", "nice colour", "bad zipper", "很好看"]]

    run = training.training_request(project=project, trigger="manual")
    assert run is not None

    _wait_for("a version is active", lambda: ModelVersion.objects.filter(
        project=project, is_active=True).exists(), log)
    version = ModelVersion.objects.get(project=project, is_active=True)
    assert version.metrics["evaluated_on"] == "gold"
    _wait_for("the pool is scored", lambda: Prediction.objects.filter(
        model_version=version, item__in=pool).count() == len(pool), log)
    _wait_for("the label review checked the labels", lambda: LabelFlag.objects.filter(
        model_version=version).exists(), log)
    flagged = set(LabelFlag.objects.filter(model_version=version)
                  .values_list("item__text", flat=True))
    assert flagged & set(PLANTED), flagged

    result = items_push(project=project, rows=[{"text": "arrived torn, terrible"}])
    pushed = [row for row in result.rows if row.get("status") == "created"]
    assert pushed, result.rows
    _wait_for("a pushed item is predicted", lambda: Prediction.objects.filter(
        model_version=version, item_id=pushed[0]["item_id"]).exists(), log)

    # an upload imported by the worker, its embeddings, the fast loop's re-rank they trigger
    fits_before = HeadFit.objects.filter(project=project).count()
    upload = io.StringIO()
    twins = ["Five stars, fits great, would buy again!", "five stars - fits great, would buy again"]
    csv.writer(upload).writerows([["text"], *([f"{text} (import)"] for text in POSITIVE + NEGATIVE),
                                  *([twin] for twin in twins)])
    name = storages["artifacts"].save("uploads/more.csv", ContentFile(upload.getvalue().encode()))
    job = ImportJob.objects.create(project=project, filename="more.csv", upload_path=name,
                                   status=ImportJob.Status.QUEUED,
                                   options={"fmt": "csv", "encoding": None})
    import_file_task.delay(job.pk)
    _wait_for("the upload is imported", lambda: _finished(job), log)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    _wait_for("the pool is embedded", lambda: not missing_ids(project), log)
    _wait_for("the fast loop re-ranked", lambda: HeadFit.objects.filter(
        project=project).count() > fits_before, log)
    # the embeddings also regroup the pool's near-duplicates (the bulk queue)
    _wait_for("the two near-duplicates are one group", lambda: len(set(Item.objects.filter(
        project=project, text__in=twins).values_list("duplicate_group", flat=True)) - {None})
        == 1 and not Item.objects.filter(project=project, text__in=twins,
                                         duplicate_group=None).exists(), log)

    # labels given through the labeling service re-rank the queue once the trigger's window
    # has closed (a task sent with a countdown, held by the worker until then)
    Membership.objects.create(project=project, user=lena)
    Project.objects.filter(pk=project.pk).update(fast_loop_every=2)
    project.refresh_from_db()
    labels_before = HeadFit.objects.order_by("-pk").first().labels
    for _ in range(2):
        item = item_next_claim(labeler=lena, project=project)
        annotation_submit(labeler=lena, item=item, label="positive")
    _wait_for("the labels re-ranked the queue", lambda: HeadFit.objects.filter(
        project=project, labels__gte=labels_before + 2).exists(), log)

    # an alert on the next pushed item, and its webhook delivered to a local receiver
    with _receiver() as received:
        for label in project.label_names:  # whichever label the item gets fires its rule
            AlertRule.objects.create(project=project, name=label, label=label, threshold=0.0,
                                     window=1, webhook_url=f"http://127.0.0.1:{received.port}/")
        items_push(project=project, rows=[{"text": "the seams split on day one"}])
        _wait_for("the alert's webhook arrived", lambda: received.bodies, log)
    assert WebhookDelivery.objects.filter(delivered=True).exists()

    # a student of the active version, distilled by the training queue, kept inactive
    layers = model_version_distill_request(version=version, layers=1)
    _wait_for("the student is stored", lambda: ModelVersion.objects.filter(
        distilled_from=version, distilled_layers=layers).exists(), log)
    student = ModelVersion.objects.get(distilled_from=version)
    assert not student.is_active and student.metrics.get("macro_f1") is not None, student.metrics

    assert proc.poll() is None, "the worker died"
    assert list(BackgroundFailure.objects.values_list("text", flat=True)) == []
    text = log.read_text()
    for failure in ("raised unexpected", "Traceback", "daemonic processes", "WorkerLostError"):
        assert failure not in text, text[-6000:]


def test_a_worker_on_several_queues_takes_from_them_in_turn(purged_broker, tmp_path):
    """A big import's embedding chunks (queue "bulk") were all ahead of another project's
    scoring: with its own queue, the scoring runs after one chunk, not after all of them."""
    from annotator.tasks import embed_chunk_task, score_chunk_task

    for n in range(8):  # no such project: each chunk is a quick no-op
        embed_chunk_task.delay(999_999, "key", [n])
    score_chunk_task.delay(999_999, [1])  # no such version: a no-op too
    log = tmp_path / "worker.log"
    proc = _start_worker("scoring,bulk", log)
    try:
        _wait_for("nine tasks ran", lambda: log.read_text().count(" succeeded in ") >= 9, log,
                  timeout=120)
    finally:
        _stop(proc)
    order = [line.split("annotator.tasks.")[1].split("[")[0]
             for line in log.read_text().splitlines() if " succeeded in " in line]
    assert order.index("score_chunk_task") <= 2, order
