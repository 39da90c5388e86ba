"""Imports write in short transactions as hidden (staged) rows and publish them at once.

So labelers' writes get through during a long import (SQLite has one writer), a failed,
interrupted or killed import leaves no items, and a dead import's job does not stay
"running" (subprocess kills are in test_import_recovery.py).
"""

import hashlib
import sqlite3
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotator.models import ImportJob, Item
from annotator.services import importing
from annotator.services.importing import (
    ImportBusy,
    ImportLost,
    import_file,
    import_job_run,
    import_jobs_sweep,
)
from tests.annotator.liveness_helpers import mark_held


@pytest.fixture
def batches_of_two(settings):
    settings.IMPORT_BATCH_SIZE = 2


def _csv(tmp_path, rows=7, name="reviews.csv"):
    path = tmp_path / name
    path.write_text("text\n" + "".join(f"review number {i}\n" for i in range(rows)))
    return path


def test_rows_stay_hidden_until_the_whole_file_is_in(project, tmp_path, batches_of_two):
    seen = []

    def progress(done):
        seen.append((Item.objects.count(), Item.with_staged.filter(staged=True).count()))

    job = import_file(project=project, path=_csv(tmp_path), progress=progress)
    assert seen[:3] == [(0, 2), (0, 4), (0, 6)]
    assert (job.status, job.imported) == ("succeeded", 7)
    assert Item.objects.count() == 7 and not Item.with_staged.filter(staged=True).exists()
    assert set(Item.objects.values_list("import_job", flat=True)) == {job.pk}


@pytest.mark.django_db(transaction=True)
def test_other_writers_get_the_database_between_batches_on_sqlite(
    project, tmp_path, batches_of_two
):
    if connection.vendor != "sqlite":
        pytest.skip("the single-writer embedded database")
    writes = []

    def labeler_writes(done):
        # a labeler's write that may wait 0.1 s at most (one big import transaction holds the
        # write lock for the whole file: "database is locked")
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.1,
                                isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE annotator_project SET name = name")
            other.execute("COMMIT")
            writes.append(done)
        finally:
            other.close()

    job = import_file(project=project, path=_csv(tmp_path), progress=labeler_writes)
    assert job.status == "succeeded" and len(writes) == 4  # after each of the 4 batches


def test_an_interrupted_import_deletes_what_it_staged(project, tmp_path, batches_of_two):
    calls = []

    def ctrl_c_on_the_second_batch(done):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_file(project=project, path=_csv(tmp_path), progress=ctrl_c_on_the_second_batch)
    job = ImportJob.objects.get()
    assert job.status == "failed" and job.error.startswith("interrupted (Ctrl-C")
    assert not Item.with_staged.exists()


def test_a_job_stopped_from_outside_while_running_publishes_nothing(
    project, tmp_path, batches_of_two
):
    def marked_failed_by_the_sweep(done):
        ImportJob.objects.update(status="failed", error="stale")

    with pytest.raises(ImportLost):
        import_file(project=project, path=_csv(tmp_path), progress=marked_failed_by_the_sweep)
    assert not Item.with_staged.exists()


def test_one_import_runs_per_project_and_the_next_waits(project, tmp_path, admin_user):
    running = ImportJob.objects.create(project=project, filename="a.csv", status="running",
                                       heartbeat_at=timezone.now())
    queued = ImportJob.objects.create(project=project, filename="b.csv", status="queued",
                                      options={}, upload_path=str(_csv(tmp_path)))
    with mark_held("import", running.pk), pytest.raises(
            ImportBusy, match=f"import #{running.pk} of this project is still running"):
        import_job_run(job_id=queued.pk)
    queued.refresh_from_db()
    assert queued.status == "queued" and not Item.with_staged.exists()

    ImportJob.objects.filter(pk=running.pk).update(status="succeeded")
    assert import_job_run(job_id=queued.pk).imported == 7
    assert import_job_run(job_id=queued.pk).imported == 7  # redelivered: nothing happens
    assert Item.objects.count() == 7


def test_the_task_retries_while_another_import_runs(project, tmp_path, monkeypatch):
    from celery.exceptions import Retry

    from annotator import tasks

    running = ImportJob.objects.create(project=project, filename="a.csv", status="running",
                                       heartbeat_at=timezone.now())
    queued = ImportJob.objects.create(project=project, filename="b.csv", status="queued",
                                      upload_path=str(_csv(tmp_path)))
    retried = []
    monkeypatch.setattr(tasks.import_file_task, "retry",
                        lambda **kw: retried.append(kw["countdown"]) or Retry())
    with mark_held("import", running.pk), pytest.raises(Retry):
        tasks.import_file_task(queued.pk)
    assert retried == [10]


def _dead_job(project, **fields):
    """A job whose process was killed after staging two rows."""
    job = ImportJob.objects.create(
        project=project, filename="killed.csv", status="running", bytes_total=1000,
        bytes_read=400, heartbeat_at=timezone.now() - timedelta(hours=1), **fields)
    for text in ("review number 1", "review number 2"):
        Item.with_staged.create(project=project, text=text, raw_text=text, staged=True,
                                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                                import_job=job)
    return job


def test_the_sweep_fails_dead_imports_and_deletes_their_rows(project, settings):
    settings.IMPORT_STALE_SECONDS = 60
    dead = _dead_job(project)
    alive = ImportJob.objects.create(project=project.__class__.objects.create(name="other"),
                                     filename="alive.csv", status="running",
                                     heartbeat_at=timezone.now())
    with mark_held("import", alive.pk):
        result = import_jobs_sweep()
    assert result == {"failed": [dead.pk], "deleted": 2, "issues": 0, "previews": 0}
    dead.refresh_from_db()
    assert dead.status == "failed" and "killed or died" in dead.error
    assert dead.imported == 0 and not Item.with_staged.exists()
    alive.refresh_from_db()
    assert alive.status == "running"


def test_the_report_page_says_a_killed_import_failed(admin_client, project):
    dead = _dead_job(project)
    page = admin_client.get(reverse("import_report", args=[project.pk, dead.pk])).content.decode()
    assert "Nothing was imported: the import stopped: its process was killed" in page
    assert "<progress" not in page


def test_a_new_import_clears_rows_a_killed_one_left_and_can_bring_the_same_texts(
    project, tmp_path
):
    _dead_job(project)
    importing.import_jobs_fail_stale()
    job = import_file(project=project, path=_csv(tmp_path, rows=3))
    assert (job.imported, job.duplicates) == (3, 0)
    assert Item.with_staged.count() == 3


def test_a_running_import_whose_process_is_gone_is_failed_at_once(project, settings):
    """No waiting for IMPORT_STALE_SECONDS: nobody holds its process mark."""
    settings.IMPORT_STALE_SECONDS = 3600
    job = ImportJob.objects.create(project=project, filename="gone.csv", status="running",
                                   heartbeat_at=timezone.now())
    assert importing.import_jobs_fail_stale() == [job.pk]


def test_a_push_clears_a_dead_imports_staged_copy_of_its_text(project, settings):
    from annotator.services.items import items_push

    settings.IMPORT_STALE_SECONDS = 3600
    dead = _dead_job(project)
    ImportJob.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now())
    pushed = items_push(project=project, rows=[{"text": "review number 1"}])
    assert [row["status"] for row in pushed.rows] == ["created"]
    dead.refresh_from_db()
    assert dead.status == "failed"


def test_a_push_leaves_a_live_imports_staged_rows_and_answers_conflict(project):
    from annotator.services.items import PushConflict, items_push

    live = _dead_job(project)
    ImportJob.objects.filter(pk=live.pk).update(heartbeat_at=timezone.now())
    with mark_held("import", live.pk), pytest.raises(PushConflict):
        items_push(project=project, rows=[{"text": "review number 1"}])
    assert Item.with_staged.filter(import_job=live).count() == 2


def test_a_new_import_fails_a_dead_running_one_instead_of_waiting_forever(project, tmp_path):
    dead = _dead_job(project)
    assert import_file(project=project, path=_csv(tmp_path, rows=3)).imported == 3
    dead.refresh_from_db()
    assert dead.status == "failed"
