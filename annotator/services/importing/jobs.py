"""The import job's lifecycle: upload and preview, start, run (claim, read, write, publish),
cancel, fail, and the sweep that cleans up after imports that died.
"""

import csv
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from annotator.lib.csv_safe import Echo, neutralize_formula
from annotator.ml.artifacts import artifacts_storage, stored_file_local
from annotator.models import ImportIssue, ImportJob, Item, Project
from annotator.queueing import enqueue
from annotator.services.importing.errors import ImportBusy, ImportLost, ImportRejected
from annotator.services.importing.formats import (
    SAMPLE_BYTES,
    ByteCounter,
    detect_encoding,
    detect_format,
    encoding_doubt,
    encoding_name,
    read_rows,
    shorten,
)
from annotator.services.importing.rows import Importer
from annotator.services.labeling import project_apply_overlap
from annotator.services.liveness import process_alive, process_mark
from annotator.services.readability import vocabulary_check_request

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 120
PREVIEW_KEEP = timedelta(days=1)  # an upload nobody mapped is deleted after this
ANALYZE_AFTER_ROWS = 10_000  # PostgreSQL: refresh table statistics after a big import

DELETE_BATCH = 2_000  # staged rows deleted per short transaction
OPTIONS = {  # what an import can be told, with the defaults
    "fmt": None,
    "encoding": None,
    "text_column": "text",
    "label_column": None,
    "id_column": None,
    "meta_columns": [],
    "kind_column": None,
    "turns_column": "turns",
    "split": Item.Split.POOL,
    "skip_invalid": False,
}

logger = logging.getLogger(__name__)


def _options(options: dict) -> dict:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown import options: {', '.join(sorted(unknown))}")
    return {**OPTIONS, **options}


def import_file(
    *,
    project: Project,
    path: str | Path | None = None,
    fileobj: IO[bytes] | None = None,
    filename: str = "",
    user=None,
    progress: Callable[[int], None] | None = None,
    **options,
) -> ImportJob:
    """Import one file into `project` now, in this process; returns the finished ImportJob.

    `options` are those of OPTIONS (format, encoding, column mapping, split, skip_invalid).
    `fileobj` must be opened in binary mode. `progress(bytes_read)` is called after each
    batch. Raises ImportRejected (with `.job`, recorded as failed) when the file cannot be
    imported, ImportBusy when another import of the project is running; either way no item
    was written.
    """
    if (path is None) == (fileobj is None):
        raise ValueError("pass exactly one of path or fileobj")
    options = _options(options)
    name = filename or str(path or getattr(fileobj, "name", "") or "upload")
    total = Path(path).stat().st_size if path is not None else _size(fileobj)
    job = ImportJob.objects.create(project=project, filename=Path(name).name[:300],
                                   created_by=user, options=options, bytes_total=total,
                                   status=ImportJob.Status.QUEUED)
    return import_job_run(job_id=job.pk, path=path, fileobj=fileobj, progress=progress)


def _size(fileobj: IO[bytes]) -> int:
    try:
        here = fileobj.tell()
        size = fileobj.seek(0, 2)
        fileobj.seek(here)
        return size
    except (OSError, AttributeError):
        return 0


def import_job_upload(
    *, project: Project, upload, user=None, fmt: str | None = None, encoding: str | None = None
) -> ImportJob:
    """Keep an uploaded file as a job waiting for its column mapping (status preview), in the
    artifacts storage under uploads/ (ImportJob.upload_path is its name there), where the
    worker that imports it finds it. `upload` is a Django UploadedFile; `fmt` and `encoding`
    are declared, else detected. Raises ImportRejected, and keeps nothing, when its first rows
    cannot be read.
    """
    file_preview(fileobj=upload, filename=upload.name, fmt=fmt, encoding=encoding)
    name = artifacts_storage().save(
        f"uploads/{uuid.uuid4().hex}{Path(upload.name).suffix.lower()[:10]}", upload)
    return ImportJob.objects.create(
        project=project, filename=Path(upload.name).name[:300], created_by=user,
        options={"fmt": fmt, "encoding": encoding}, upload_path=name,
        bytes_total=upload.size, status=ImportJob.Status.PREVIEW,
    )


@contextmanager
def _upload_local(job: ImportJob) -> Iterator[Path]:
    """A path on this machine to the job's kept upload: the stored file (copied here from an
    object store), or a local path as kept before uploads went to the storage."""
    if Path(job.upload_path).is_absolute():
        yield Path(job.upload_path)
        return
    with stored_file_local(job.upload_path) as path:
        yield path


def upload_preview(*, job: ImportJob, fmt: str | None = None,
                   encoding: str | None = None) -> "FilePreview":
    """`file_preview` of a job's kept upload."""
    with _upload_local(job) as path:
        return file_preview(path=path, filename=job.filename, fmt=fmt, encoding=encoding)


@dataclass(frozen=True)
class FilePreview:
    fmt: str
    encoding: str
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (line, its cells in column order, long ones cut)
    warning: str = ""  # the texts look like mojibake in this encoding (encoding_doubt)
    likely_encoding: str = ""  # the one that reads them, if one does

    @property
    def encoding_name(self) -> str:
        return encoding_name(self.encoding)


def file_preview(
    *, path: str | Path | None = None, fileobj: IO[bytes] | None = None, filename: str,
    fmt: str | None = None, encoding: str | None = None,
) -> FilePreview:
    """The first rows of a file (a path, or a binary file object, read from its start) as the
    import would read them; ImportRejected if it cannot.

    Columns: the CSV/TSV header, or the keys of the first JSON objects.
    """
    kind = detect_format(filename, fmt)
    with ExitStack() as stack:
        if fileobj is None:
            fileobj = stack.enter_context(open(path, "rb"))  # noqa: SIM115
        fileobj.seek(0)
        sample = fileobj.read(SAMPLE_BYTES)
        enc = detect_encoding(sample, encoding)
        fileobj.seek(0)
        rows = list(islice(read_rows(fileobj, kind, enc, ByteCounter(), required=[]), PREVIEW_ROWS))
    columns = list(dict.fromkeys(key for _, row in rows for key in row))
    cells = [
        (line, [shorten(_as_text(row.get(column)), PREVIEW_CELL_CHARS) for column in columns])
        for line, row in rows
    ]
    warning, likely = encoding_doubt(sample, enc)
    return FilePreview(fmt=kind, encoding=enc, columns=columns, rows=cells, warning=warning,
                       likely_encoding=likely)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def import_job_start(*, job: ImportJob, **options) -> bool:
    """Save a previewed job's column mapping (OPTIONS) and queue it for a worker.

    False when it was not waiting for a mapping (started already by a double submit, or
    cancelled).
    """
    options = _options(options)
    started = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).update(
        status=ImportJob.Status.QUEUED, options=options)
    if started:
        transaction.on_commit(lambda: _enqueue_import(job.pk))
    return bool(started)


def import_job_cancel(*, job: ImportJob) -> bool:
    """Delete a job still waiting for its mapping, and its file; False if it has started."""
    deleted, _ = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).delete()
    if deleted:
        _forget_upload(job)
    return bool(deleted)


def import_previews_delete() -> int:
    """Delete the uploads nobody mapped within PREVIEW_KEEP, with their files."""
    old = ImportJob.objects.filter(status=ImportJob.Status.PREVIEW,
                                   created_at__lt=timezone.now() - PREVIEW_KEEP)
    return sum(import_job_cancel(job=job) for job in old.only("pk", "upload_path"))


def import_rejected_csv(*, job: ImportJob) -> Iterator[str]:
    """The rejected rows as CSV lines, to fix and import again: the file's own columns, then
    import_line and import_reason. Cells, the header's too, are formula-neutralised like the
    export's (an import restores them); a BOM first, so Excel reads Chinese (an import skips it)."""
    rejected = job.issues.filter(kind=ImportIssue.Kind.REJECTED)
    found: set[str] = set()
    for row in rejected.values_list("row", flat=True).iterator(chunk_size=DELETE_BATCH):
        found.update(row)  # JSON rows need not share their keys
    # PostgreSQL's jsonb keeps no key order: the mapped columns first, then the others by name
    options = _options(job.options)
    mapped = [options[name] for name in ("text_column", "label_column", "id_column",
                                         "kind_column", "turns_column")]
    mapped = [c for c in dict.fromkeys([*mapped, *options["meta_columns"]]) if c in found]
    columns = mapped + sorted(found - set(mapped))
    writer = csv.writer(Echo())  # writerow() returns the formatted line
    header = [*columns, "import_line", "import_reason"]
    yield "\ufeff" + writer.writerow([neutralize_formula(name) for name in header])
    issues = rejected.values_list("line", "reason", "row")
    for line, reason, row in issues.iterator(chunk_size=DELETE_BATCH):
        cells = [_as_text(row.get(column)) for column in columns]
        yield writer.writerow([neutralize_formula(cell) for cell in [*cells, str(line), reason]])


def _enqueue_import(job_id: int) -> None:
    enqueue("annotator.tasks.import_file_task", job_id)


def _claim(job: ImportJob) -> bool:
    """queued -> running; False if the job is not queued (done, or redelivered).

    Raises ImportBusy while another import of the project runs (a dead one is failed first).
    """
    import_jobs_fail_stale(ImportJob.objects.filter(project_id=job.project_id))
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.QUEUED).update(
                status=ImportJob.Status.RUNNING, started_at=now, heartbeat_at=now)
    except IntegrityError:
        running = (ImportJob.objects.filter(project_id=job.project_id,
                                            status=ImportJob.Status.RUNNING)
                   .values_list("pk", flat=True).first())
        raise ImportBusy(f"import #{running} of this project is still running; "
                         "this one starts when it ends") from None
    return bool(claimed)


def import_job_run(
    *,
    job_id: int,
    path: str | Path | None = None,
    fileobj: IO[bytes] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportJob:
    """Run a queued import job (from its upload_path unless a path or fileobj is given).

    Idempotent: a job that is not queued is returned as it is.
    """
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    # held from before the claim to the end: a running job without it is a dead one
    with process_mark("import", job.pk):
        if not _claim(job):
            return job
        return _run_claimed(job, path=path, fileobj=fileobj, progress=progress)


def _run_claimed(job: ImportJob, *, path, fileobj, progress) -> ImportJob:
    _lower_priority()
    project, options = job.project, _options(job.options)
    counter = ByteCounter()
    try:
        with ExitStack() as stack:
            if fileobj is None:
                path = path or stack.enter_context(_upload_local(job))
                fileobj = stack.enter_context(open(path, "rb"))  # noqa: SIM115
            kind = detect_format(job.filename, options["fmt"])
            row_options = {k: v for k, v in options.items() if k not in ("fmt", "encoding")}
            importer = Importer(project=project, job=job, counter=counter, **row_options)
            staged_items_delete(project=project)  # left by an import killed earlier
            sample = fileobj.read(SAMPLE_BYTES)
            fileobj.seek(0)
            enc = detect_encoding(sample, options["encoding"])
            rows = read_rows(fileobj, kind, enc, counter, required=importer.required_columns())
            importer.run(rows, (lambda: progress(counter.read)) if progress else None)
            _publish(job, importer)
    except BaseException as exc:  # Ctrl-C and shutdowns too: nothing stays half-written
        _fail(job, exc)
        if isinstance(exc, ImportRejected):
            exc.job = job
        raise
    finally:
        _forget_upload(job)
    if connection.vendor == "postgresql" and importer.imported >= ANALYZE_AFTER_ROWS:
        # Fresh planner statistics: with stale ones the next import's hash lookups
        # (and the labeling queue) scan the whole project instead of using the index.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Item._meta.db_table)}")
    job.refresh_from_db()
    if job.imported:
        vocabulary_check_request(project=project, import_job=job)
    if job.imported and options["split"] == Item.Split.POOL and project.fast_loop_every:
        transaction.on_commit(lambda: enqueue_embedding(project.pk))
    if (
        job.imported
        and options["split"] == Item.Split.POOL
        and not project.model_versions.filter(is_active=True).exists()
    ):
        transaction.on_commit(lambda: enqueue_seeding(project.pk))
    return job


def _lower_priority() -> None:
    """Let the web processes have the CPU first (settings.IMPORT_NICE; once per process: a
    nice increment cannot be undone without privileges)."""
    global _niced
    if settings.IMPORT_NICE and not _niced:
        os.nice(settings.IMPORT_NICE)
        _niced = True


_niced = False


def _publish(job: ImportJob, importer: Importer) -> None:
    """Make the staged rows items, all in one transaction."""
    with transaction.atomic():
        finished = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
            status=ImportJob.Status.SUCCEEDED, finished_at=timezone.now(),
            heartbeat_at=timezone.now(), bytes_read=importer.counter.read,
            imported=importer.imported, duplicates=importer.duplicates,
            rejected=importer.rejected, report=importer.report,
        )
        if not finished:
            raise ImportLost(f"import #{job.pk} was stopped while it ran")
        Item.with_staged.filter(import_job=job, staged=True).update(staged=False)
        if job.project.overlap_percent and importer.imported:
            project_apply_overlap(job.project)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ImportRejected | ImportLost):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted (Ctrl-C or a shutdown) before it finished; nothing was imported"
    return f"{type(exc).__name__}: {exc}"


def _fail(job: ImportJob, exc: BaseException) -> None:
    """Record why, and delete what the job staged (best effort: the sweep finishes it)."""
    try:
        ImportJob.objects.filter(pk=job.pk).exclude(status=ImportJob.Status.SUCCEEDED).update(
            status=ImportJob.Status.FAILED, error=_reason(exc), finished_at=timezone.now(),
            imported=0,
        )
        staged_items_delete(job=job)
        failed_issues_delete(job=job)
    except Exception:  # the database itself may be why the import failed
        logger.exception("could not record the failure of import #%s", job.pk)
    job.refresh_from_db()


def _forget_upload(job: ImportJob) -> None:
    if not job.upload_path:
        return
    if Path(job.upload_path).is_absolute():
        Path(job.upload_path).unlink(missing_ok=True)
    else:
        artifacts_storage().delete(job.upload_path)


def staged_items_delete(*, project: Project | None = None, job: ImportJob | None = None) -> int:
    """Delete staged rows no running import owns (of one job, one project, or all), in short
    transactions. Returns how many."""
    staged = Item.with_staged.filter(staged=True)
    if job is not None:
        staged = staged.filter(import_job=job)
    if project is not None:
        staged = staged.filter(project=project)
    staged = staged.filter(Q(import_job__isnull=True) | ~Q(import_job__status__in=[
        ImportJob.Status.RUNNING, ImportJob.Status.QUEUED]))
    return _delete_in_batches(staged)


def failed_issues_delete(*, job: ImportJob | None = None) -> int:
    """Delete the issues failed imports wrote (of one job, or all): nothing of them was
    imported, so their error is the whole report. Returns how many."""
    issues = ImportIssue.objects.filter(job__status=ImportJob.Status.FAILED)
    if job is not None:
        issues = issues.filter(job=job)
    return _delete_in_batches(issues)


def _delete_in_batches(rows: models.QuerySet) -> int:
    deleted = 0
    while ids := list(rows.values_list("pk", flat=True)[:DELETE_BATCH]):
        with transaction.atomic():
            rows.model._base_manager.filter(pk__in=ids).delete()  # staged items too
        deleted += len(ids)
    return deleted


DIED = ("the import stopped: its process was killed or died; nothing was imported. Import "
        "the file again.")


def import_jobs_fail_stale(jobs=None) -> list[int]:
    """Mark running jobs whose process is gone failed and delete their uploads; returns their
    ids. Gone: nobody holds the job's process mark (services.liveness: known at once), or no
    heartbeat for IMPORT_STALE_SECONDS. Their staged rows go with `staged_items_delete`."""
    jobs = ImportJob.objects.all() if jobs is None else jobs
    cutoff = timezone.now() - timedelta(seconds=settings.IMPORT_STALE_SECONDS)
    running = jobs.filter(status=ImportJob.Status.RUNNING)
    stale = {pk for pk, beat in running.values_list("pk", "heartbeat_at")
             if (beat is not None and beat < cutoff) or not process_alive("import", pk)}
    for job in ImportJob.objects.filter(pk__in=stale).only("pk", "upload_path"):
        ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
            status=ImportJob.Status.FAILED, finished_at=timezone.now(), imported=0, error=DIED)
        _forget_upload(job)
    if stale:
        logger.warning("marked imports whose process died failed: %s", sorted(stale))
    return sorted(stale)


def import_jobs_clear_dead(*, project: Project, content_hashes: list[str]) -> int:
    """Staged rows with these texts whose import is dead: fail that import (services.liveness
    knows at once) and delete these rows now, so a push does not wait for the sweep, which
    deletes the rest of what it staged. Rows of a live import stay: it is writing them.
    Returns the rows deleted."""
    blocking = Item.with_staged.filter(project=project, staged=True,
                                       content_hash__in=content_hashes)
    owners = set(blocking.exclude(import_job=None).values_list("import_job_id", flat=True))
    if owners:
        import_jobs_fail_stale(ImportJob.objects.filter(pk__in=owners))
    return _delete_in_batches(blocking.filter(Q(import_job=None) | ~Q(
        import_job__status__in=[ImportJob.Status.RUNNING, ImportJob.Status.QUEUED])))


def import_jobs_sweep() -> dict:
    """Beat: fail stale imports, delete the rows and issues failed imports wrote, and the
    uploads nobody mapped within PREVIEW_KEEP."""
    return {"failed": import_jobs_fail_stale(), "deleted": staged_items_delete(),
            "issues": failed_issues_delete(), "previews": import_previews_delete()}


def enqueue_embedding(project_id: int) -> None:
    """The fast loop reads an embedding of every pool item: embed the new ones."""
    enqueue("annotator.tasks.embed_pool_task", project_id)


def enqueue_seeding(project_id: int) -> None:
    """Cold start: before the first model, queue items spread over the embedding space."""
    from annotator.services.ranking import seeding_request

    seeding_request(project_id)
