"""Import items from CSV, TSV, JSON (array of objects) and JSONL files.

The file is read row by row (never whole into memory) and written in batches of
settings.IMPORT_BATCH_SIZE, each batch in its own short transaction, so labelers' writes
get through between batches even on SQLite (one writer at a time). The rows are written
`staged` (invisible: Item.objects hides them) and published at the end by one UPDATE in
one transaction: from the user's point of view an import lands completely or not at all.
A failed or interrupted import deletes its staged rows; one killed outright (kill -9) stops
its heartbeat and `import_jobs_fail_stale` marks it failed, `staged_items_delete` removes
what it wrote. One import runs per project at a time (a partial unique constraint).

The web upload keeps the file and shows a preview (`import_job_upload`, `upload_preview`); the
admin's column mapping queues the job (`import_job_start`) that a Celery worker runs
(`import_job_run`), with progress on the report page. The upload is kept in the "artifacts"
storage under uploads/ (annotator/ml/artifacts.py), not on the web machine's disk: the worker
that imports it may run on another machine; the command line and tests run it in
their own process (`import_file`).

File-level errors always abort (ImportRejected, message "line N: reason"):
binary data, bytes that do not decode, malformed CSV/JSON, a missing text
column, a label outside the project's label set, an unknown kind, malformed
dialogue turns, a file without rows. Row-level problems (empty text after cleaning, text
longer than settings.IMPORT_MAX_TEXT_CHARS) also abort by default; with
skip_invalid=True those rows are rejected into the report instead.
Duplicates (same clean text earlier in the file or already in the project)
are never errors: they are counted and listed in the report.

Every duplicate and rejected row becomes an ImportIssue (with the row as read), written in
its batch's transaction; a failed import deletes them with its staged rows, since nothing of
it was imported. ImportJob.report keeps the first REPORT_LIMIT of them for the command line.

The layers, each in its own module (a lower one never imports a higher one):

- `formats`: file readers: format and encoding detection (`detect_format`,
  `detect_encoding`, `encoding_doubt`), bounded lines, the CSV/TSV, JSON and JSONL row readers
  (`read_rows`, `jsonl_rows`);
- `rows`: the row rules and the `Importer` that turns rows into staged items and issues
  (services.items runs the same rules on pushed rows);
- `writer`: `BulkWriter`, COPY on PostgreSQL, one INSERT elsewhere;
- `jobs`: the job lifecycle (`import_file`, `import_job_upload` / `upload_preview`,
  `import_job_start`, `import_job_run`, `import_job_cancel`, `import_rejected_csv`, the sweep);
- `errors`: ImportRejected, ImportBusy, ImportLost.

This package re-exports the names other modules import; a test patches a name in the module
that looks it up (e.g. `importing.rows.REPORT_LIMIT`), not here.
"""

from annotator.services.importing.errors import ImportBusy, ImportLost, ImportRejected
from annotator.services.importing.formats import FORMATS, jsonl_rows
from annotator.services.importing.jobs import (
    OPTIONS,
    file_preview,
    import_file,
    import_job_cancel,
    import_job_run,
    import_job_start,
    import_job_upload,
    import_jobs_clear_dead,
    import_jobs_fail_stale,
    import_jobs_sweep,
    import_rejected_csv,
    upload_preview,
)

__all__ = [
    "FORMATS",
    "OPTIONS",
    "ImportBusy",
    "ImportLost",
    "ImportRejected",
    "file_preview",
    "import_file",
    "import_job_cancel",
    "import_job_run",
    "import_job_start",
    "import_job_upload",
    "import_jobs_clear_dead",
    "import_jobs_fail_stale",
    "import_jobs_sweep",
    "import_rejected_csv",
    "jsonl_rows",
    "upload_preview",
]
