"""Import items from CSV, TSV, JSON (array of objects) and JSONL files.

The file is read row by row (never whole into memory) and written with
bulk_create in batches of settings.IMPORT_BATCH_SIZE, all inside one
transaction: an import either lands completely or not at all.

File-level errors always abort (ImportRejected, message "line N: reason"):
binary data, bytes that do not decode, malformed CSV/JSON, a missing text
column, a label outside the project's label set, an unknown kind, malformed
dialogue turns. Row-level problems (empty text after cleaning, text longer
than settings.IMPORT_MAX_TEXT_CHARS) also abort by default; with
skip_invalid=True those rows are rejected into the report instead.
Duplicates (same clean text earlier in the file or already in the project)
are never errors: they are counted and listed in the report.
"""

import codecs
import csv
import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from annotator.cleaning import clean_text
from annotator.models import ImportJob, Item, Project, TextKind
from annotator.services.exporting import restore_formula
from annotator.services.labeling import project_apply_overlap
from annotator.services.readability import vocabulary_check_request

FORMATS = ("csv", "tsv", "json", "jsonl")
EXTENSIONS = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
REPORT_LIMIT = 1000  # report entries kept on the ImportJob; counts stay exact
SAMPLE_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
ANALYZE_AFTER_ROWS = 10_000  # PostgreSQL: refresh table statistics after a big import

csv.field_size_limit(2**31 - 1)  # long texts get our own "too long" error, not csv's


class ImportRejected(Exception):
    """The file cannot be imported; nothing was written."""

    job: ImportJob | None = None

    def __init__(self, reason: str, *, line: int | None = None):
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


class _Bytes:
    """Counts bytes read, for the progress bar."""

    def __init__(self) -> None:
        self.read = 0


def detect_format(name: str, declared: str | None = None) -> str:
    if declared:
        if declared.lower() not in FORMATS:
            raise ImportRejected(f"unknown format {declared!r}; use one of {', '.join(FORMATS)}")
        return declared.lower()
    ext = Path(name).suffix.lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise ImportRejected(
            f"cannot tell the format of {Path(name).name!r}; declare one of {', '.join(FORMATS)}"
        )
    return EXTENSIONS[ext]


LEGACY_ENCODINGS = ("gb18030", "cp1252")  # Chinese (a superset of GBK) and Western Windows
NAMES = {"gb18030": "GB18030", "cp1252": "Windows-1252"}
CLEAR_MARGIN = 0.1  # charset-normalizer "chaos": the best reading must beat the next by this


def detect_encoding(sample: bytes, declared: str | None = None) -> str:
    """The declared encoding; else UTF-8 (BOM or not); else the legacy encoding that reads the
    sample clearly best by charset-normalizer's mess measure (GB18030 or Windows-1252).

    Unsure (two readings about as plausible, or none plausible) -> ImportRejected that shows
    how each reading starts, so the user can declare the right one. GB18030 alone would
    accept Windows-1252 bytes ("Très" -> "Tr鑣"), so a bare "does it decode" is not enough.
    """
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportRejected("UTF-16 files are not supported; save the file as UTF-8", line=1)
    nul = sample.find(b"\x00")
    if nul >= 0:
        line = sample.count(b"\n", 0, nul) + 1
        raise ImportRejected(
            "binary data (NUL byte): expected a UTF-8, GB18030 or Windows-1252 text file",
            line=line,
        )
    if declared:
        try:
            return codecs.lookup(declared).name
        except LookupError:
            raise ImportRejected(f"unknown encoding {declared!r}") from None
    cut = len(sample) >= SAMPLE_BYTES  # the sample may end inside a character
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=not cut)
        return "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    if cut and b"\n" in sample[utf8_error.start:]:
        sample = sample[:sample.rindex(b"\n") + 1]
    from charset_normalizer import from_bytes

    readings = sorted(from_bytes(sample, cp_isolation=list(LEGACY_ENCODINGS), threshold=1.0),
                      key=lambda match: match.chaos)
    line = sample.count(b"\n", 0, utf8_error.start) + 1
    if readings and readings[0].chaos <= CLEAR_MARGIN and (
        len(readings) == 1 or readings[1].chaos - readings[0].chaos >= CLEAR_MARGIN
    ):
        return codecs.lookup(readings[0].encoding).name
    if not readings:
        raise ImportRejected(
            f"bytes are neither UTF-8 nor {' nor '.join(NAMES.values())} (byte "
            f"0x{sample[utf8_error.start]:02x}); declare the encoding (--encoding)", line=line)
    start = sample.rfind(b"\n", 0, utf8_error.start) + 1
    end = sample.find(b"\n", utf8_error.start)
    raw_line = sample[start:end if end >= 0 else len(sample)]
    options = "; ".join(
        f"{NAMES.get(r.encoding, r.encoding)} reads {raw_line.decode(r.encoding, 'replace')[:60]!r}"
        for r in readings[:2])
    raise ImportRejected(
        f"cannot tell the encoding of this file: {options}. Declare the right one "
        "(--encoding, e.g. gb18030 or cp1252)", line=line)


def _decoded_lines(fileobj: IO[bytes], encoding: str, counter: _Bytes) -> Iterator[str]:
    for number, raw in enumerate(fileobj, start=1):
        counter.read += len(raw)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ImportRejected(
                f"cannot decode bytes as {encoding} "
                f"({exc.reason} at byte {exc.start + 1} of the line); "
                "declare the right encoding (--encoding)",
                line=number,
            ) from None
        if "\x00" in text:
            raise ImportRejected("binary data (NUL byte) in a text file", line=number)
        yield text.removeprefix("\ufeff") if number == 1 else text


def _csv_rows(
    lines: Iterable[str], delimiter: str, required: list[str]
) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise ImportRejected("the file is empty", line=1) from None
    except csv.Error as exc:
        raise ImportRejected(f"malformed CSV header: {exc}", line=reader.line_num) from None
    missing = [name for name in required if name not in header]
    if missing:
        raise ImportRejected(
            f"no column {', '.join(map(repr, missing))} in the header "
            f"(columns: {', '.join(header)})",
            line=1,
        )
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportRejected(f"malformed CSV: {exc}", line=reader.line_num) from None
        if not values:
            continue  # blank line
        if len(values) != len(header):
            raise ImportRejected(
                f"malformed CSV: {len(values)} fields where the header has {len(header)}",
                line=start,
            )
        yield start, dict(zip(header, map(restore_formula, values), strict=True))


def _jsonl_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportRejected(
                f"invalid JSON: {exc.msg} (column {exc.colno})", line=number
            ) from None
        if not isinstance(obj, dict):
            raise ImportRejected("expected one JSON object per line", line=number)
        yield number, obj


def _json_array_rows(
    fileobj: IO[bytes], encoding: str, counter: _Bytes
) -> Iterator[tuple[int, dict]]:
    """Stream the objects of a top-level JSON array with raw_decode over chunks."""
    decoder = json.JSONDecoder()
    text_decoder = codecs.getincrementaldecoder(encoding)()
    max_buffer = max(8 * 1024 * 1024, settings.IMPORT_MAX_TEXT_CHARS * 8)
    buf, pos, eof, first = "", 0, False, True
    mark_pos, mark_line = 0, 1  # line number at buf[mark_pos]; pos never moves back

    def here() -> int:
        nonlocal mark_pos, mark_line
        mark_line += buf.count("\n", mark_pos, pos)
        mark_pos = pos
        return mark_line

    def more() -> bool:
        nonlocal buf, pos, eof, first, mark_pos
        if eof:
            return False
        chunk = fileobj.read(CHUNK_BYTES)
        counter.read += len(chunk)
        try:
            text = text_decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise ImportRejected(
                f"cannot decode bytes as {encoding} ({exc.reason}); declare the right encoding",
                line=here() + buf.count("\n", pos),
            ) from None
        if "\x00" in text:
            raise ImportRejected(
                "binary data (NUL byte) in a text file", line=here() + buf.count("\n", pos)
            )
        if first:
            text, first = text.removeprefix("\ufeff"), False
        here()
        buf, pos, mark_pos = buf[pos:] + text, 0, 0
        eof = not chunk
        return True

    def skip_ws() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    if skip_ws() != "[":
        raise ImportRejected(
            "a .json file must hold an array of objects ([{...}, ...])", line=here()
        )
    pos += 1
    if skip_ws() == "]":
        return
    while True:
        if not skip_ws():
            raise ImportRejected("invalid JSON: the array is not closed", line=here())
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > max_buffer or not more():
                    line = here() + buf.count("\n", pos, exc.pos)
                    raise ImportRejected(f"invalid JSON: {exc.msg}", line=line) from None
        if not isinstance(obj, dict):
            raise ImportRejected("expected an array of JSON objects", line=here())
        yield here(), obj
        pos = end
        sep = skip_ws()
        pos += 1
        if sep == "]":
            return
        if sep != ",":
            raise ImportRejected("invalid JSON: expected ',' or ']' after an object", line=here())


class _Importer:
    def __init__(
        self,
        *,
        project: Project,
        text_column: str,
        label_column: str | None,
        id_column: str | None,
        meta_columns: Iterable[str],
        kind_column: str | None,
        turns_column: str | None,
        split: str,
        skip_invalid: bool,
    ) -> None:
        if split not in Item.Split.values:
            raise ImportRejected(f"unknown split {split!r}; use pool or gold")
        self.project = project
        self.text_column = text_column
        self.label_column = label_column or None
        self.id_column = id_column or None
        self.meta_columns = [c for c in meta_columns if c]
        self.kind_column = kind_column or None
        self.turns_column = turns_column or None
        self.split = split
        self.gold = split == Item.Split.GOLD
        self.kinds = list(TextKind.values)
        self.skip_invalid = skip_invalid
        self.labels = project.label_names
        self.max_chars = settings.IMPORT_MAX_TEXT_CHARS
        self.imported = self.duplicates = self.rejected = 0
        self.report: list[dict] = []
        self.seen: set[bytes] = set()
        self.batch: list[tuple[int, dict]] = []  # (line, Item field values)

    def required_columns(self) -> list[str]:
        named = [
            self.text_column,
            self.label_column,
            self.id_column,
            self.kind_column,
            *self.meta_columns,
        ]
        return [c for c in named if c]

    def note(self, line: int, reason: str) -> None:
        if len(self.report) < REPORT_LIMIT:
            self.report.append({"line": line, "reason": reason})

    def run(self, rows: Iterable[tuple[int, dict]], progress: Callable[[], None] | None) -> None:
        self.project_had_items = Item.objects.filter(project=self.project).exists()
        for line, row in rows:
            self.add(line, row)
            if len(self.batch) >= settings.IMPORT_BATCH_SIZE:
                self.flush()
                if progress:
                    progress()
        self.flush()
        if progress:
            progress()
        self.report.sort(key=lambda entry: entry["line"])

    def add(self, line: int, row: dict) -> None:
        raw, clean, turns = self.text_of(line, row)
        if not clean:
            return self.invalid(line, "empty text after cleaning")
        if len(clean) > self.max_chars:
            return self.invalid(
                line, f"text is {len(clean):,} characters, over the limit of {self.max_chars:,}"
            )
        label = self.value(row, self.label_column)
        if label and label not in self.labels:
            raise ImportRejected(
                f"label {label!r} is not in the project's label set ({', '.join(self.labels)})",
                line=line,
            )
        kind = self.value(row, self.kind_column) or (
            TextKind.DIALOGUE if turns else self.project.text_kind
        )
        if kind not in self.kinds:
            raise ImportRejected(f"kind {kind!r} is not one of {', '.join(self.kinds)}", line=line)
        digest = hashlib.sha256(clean.encode("utf-8")).digest()
        if digest[:16] in self.seen:
            self.duplicates += 1
            return self.note(line, "duplicate: same clean text earlier in the file")
        self.seen.add(digest[:16])
        values = {
            "project_id": self.project.pk,
            "external_id": self.value(row, self.id_column)[:200],
            "raw_text": raw,
            "text": clean,
            "content_hash": digest.hex(),
            "kind": kind,
            "turns": turns,
            "meta": self.meta_of(line, row),
            "split": self.split,
            "gold_label": label if self.gold else "",
            "imported_label": "" if self.gold else label,
            "random_key": random.random(),
        }
        self.batch.append((line, values))

    def invalid(self, line: int, reason: str) -> None:
        if not self.skip_invalid:
            raise ImportRejected(
                f"{reason} (fix the row, or skip such rows with --skip-invalid)", line=line
            )
        self.rejected += 1
        self.note(line, reason)

    @staticmethod
    def value(row: dict, column: str | None) -> str:
        if not column:
            return ""
        value = row.get(column)
        return "" if value is None else str(value).strip()

    def text_of(self, line: int, row: dict) -> tuple[str, str, list | None]:
        turns = row.get(self.turns_column) if self.turns_column else None
        if isinstance(turns, str):
            turns = self.parse_json(line, turns, self.turns_column) if turns.strip() else None
        if turns:
            if not isinstance(turns, list) or not all(
                isinstance(t, dict) and isinstance(t.get("text"), str) for t in turns
            ):
                raise ImportRejected(
                    f"{self.turns_column!r} must be a list of turns like "
                    '[{"speaker": "customer", "text": "..."}]',
                    line=line,
                )
            cleaned = [
                {"speaker": clean_text(str(t.get("speaker") or "")), "text": clean_text(t["text"])}
                for t in turns
            ]
            cleaned = [t for t in cleaned if t["text"]]
            text = "\n".join(
                f"{t['speaker']}: {t['text']}" if t["speaker"] else t["text"] for t in cleaned
            )
            return json.dumps(turns, ensure_ascii=False), text, cleaned
        if self.text_column not in row:
            raise ImportRejected(f"no {self.text_column!r} field", line=line)
        raw = row[self.text_column]
        if isinstance(raw, dict | list):
            raise ImportRejected(f"{self.text_column!r} must be a string", line=line)
        raw = "" if raw is None else str(raw)
        return raw, clean_text(raw), None

    def meta_of(self, line: int, row: dict) -> dict:
        meta: dict[str, Any] = {}
        for column in self.meta_columns:
            value = row.get(column)
            if column == "meta":  # an exported meta object: merge it back
                if isinstance(value, str) and value.strip():
                    value = self.parse_json(line, value, column)
                if isinstance(value, dict):
                    meta.update(value)
                    continue
            if value not in (None, ""):
                meta[column] = value
        return meta

    @staticmethod
    def parse_json(line: int, value: str, column: str | None) -> Any:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ImportRejected(f"{column!r} holds invalid JSON: {exc.msg}", line=line) from None

    def flush(self) -> None:
        if not self.batch:
            return
        existing = set()
        if self.project_had_items:  # an empty project can only collide with this file
            hashes = [values["content_hash"] for _, values in self.batch]
            existing = set(
                Item.objects.filter(project=self.project, content_hash__in=hashes).values_list(
                    "content_hash", flat=True
                )
            )
        new = []
        for line, values in self.batch:
            if values["content_hash"] in existing:
                self.duplicates += 1
                self.note(line, "duplicate: the project already has this text")
            else:
                new.append(values)
        try:
            _insert(new)
        except IntegrityError:
            raise ImportRejected(
                "another import added some of these texts to the project meanwhile; run it again",
                line=self.batch[0][0],
            ) from None
        self.imported += len(new)
        self.batch = []


def _insert(rows: list[dict]) -> None:
    """bulk_create, or on PostgreSQL a COPY (about twice as fast for big files).

    Fields a row does not name get the model's defaults, so new Item fields
    with a default need no change here."""
    if connection.vendor != "postgresql":
        Item.objects.bulk_create([Item(**values) for values in rows], batch_size=1000)
        return
    now = timezone.now()
    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    defaults = {}
    for field in fields:
        auto = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        defaults[field.attname] = now if auto else field.get_default()
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {connection.ops.quote_name(Item._meta.db_table)} ({columns}) FROM STDIN"
    # wrap_database_errors: psycopg's errors from the raw COPY become Django's (IntegrityError)
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(sql) as copy,
    ):
        for values in rows:
            row = []
            for name, default in defaults.items():
                value = values.get(name, default)
                if name in json_fields and value is not None:
                    value = json.dumps(value, ensure_ascii=False)
                row.append(value)
            copy.write_row(row)


def import_file(
    *,
    project: Project,
    path: str | Path | None = None,
    fileobj: IO[bytes] | None = None,
    filename: str = "",
    fmt: str | None = None,
    encoding: str | None = None,
    text_column: str = "text",
    label_column: str | None = None,
    id_column: str | None = None,
    meta_columns: Iterable[str] = (),
    kind_column: str | None = None,
    turns_column: str | None = "turns",
    split: str = Item.Split.POOL,
    skip_invalid: bool = False,
    user=None,
    progress: Callable[[int], None] | None = None,
) -> ImportJob:
    """Import one file into `project`; returns the finished ImportJob.

    `fileobj` must be opened in binary mode. `progress(bytes_read)` is called
    after each batch. Raises ImportRejected (with `.job`, recorded as failed)
    when the file cannot be imported; then no item was written.
    """
    if (path is None) == (fileobj is None):
        raise ValueError("pass exactly one of path or fileobj")
    name = filename or str(path or getattr(fileobj, "name", "") or "upload")
    job = ImportJob.objects.create(project=project, filename=Path(name).name[:300], created_by=user)
    counter = _Bytes()
    try:
        with ExitStack() as stack:
            if fileobj is None:
                fileobj = stack.enter_context(open(path, "rb"))  # noqa: SIM115
            kind = detect_format(name, fmt)
            importer = _Importer(
                project=project,
                text_column=text_column,
                label_column=label_column,
                id_column=id_column,
                meta_columns=meta_columns,
                kind_column=kind_column,
                turns_column=turns_column,
                split=split,
                skip_invalid=skip_invalid,
            )
            sample = fileobj.read(SAMPLE_BYTES)
            fileobj.seek(0)
            enc = detect_encoding(sample, encoding)
            if kind == "json":
                rows = _json_array_rows(fileobj, enc, counter)
            elif kind == "jsonl":
                rows = _jsonl_rows(_decoded_lines(fileobj, enc, counter))
            else:
                delimiter = "\t" if kind == "tsv" else ","
                rows = _csv_rows(
                    _decoded_lines(fileobj, enc, counter), delimiter, importer.required_columns()
                )
            with transaction.atomic():
                importer.run(rows, (lambda: progress(counter.read)) if progress else None)
                if project.overlap_percent and importer.imported:
                    project_apply_overlap(project)
    except Exception as exc:
        job.status = ImportJob.Status.FAILED
        job.error = str(exc) if isinstance(exc, ImportRejected) else f"{type(exc).__name__}: {exc}"
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        if isinstance(exc, ImportRejected):
            exc.job = job
        raise
    if connection.vendor == "postgresql" and importer.imported >= ANALYZE_AFTER_ROWS:
        # Fresh planner statistics: with stale ones the next import's hash lookups
        # (and the labeling queue) scan the whole project instead of using the index.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Item._meta.db_table)}")
    job.status = ImportJob.Status.SUCCEEDED
    job.imported, job.duplicates, job.rejected = (
        importer.imported,
        importer.duplicates,
        importer.rejected,
    )
    job.report = importer.report
    job.finished_at = timezone.now()
    job.save()
    if job.imported:
        vocabulary_check_request(project=project, import_job=job)
    if (
        job.imported
        and split == Item.Split.POOL
        and not project.model_versions.filter(is_active=True).exists()
    ):
        transaction.on_commit(lambda: _enqueue_seeding(project.pk))
    return job


def _enqueue_seeding(project_id: int) -> None:
    """Cold start: before the first model, queue items spread over the embedding space."""
    from annotator.tasks import seed_pool_task

    seed_pool_task.delay(project_id)
