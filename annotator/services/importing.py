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
storage under uploads/ (services/artifacts.py), not on the web machine's disk: the worker
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
"""

import codecs
import csv
import hashlib
import json
import logging
import os
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.storage import storages
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from annotator.cleaning import clean_text
from annotator.models import ImportIssue, ImportJob, Item, Project, TextKind
from annotator.queueing import enqueue
from annotator.services.artifacts import stored_file_local
from annotator.services.exporting import _Echo, neutralize_formula, restore_formula
from annotator.services.labeling import project_apply_overlap
from annotator.services.liveness import process_alive, process_mark
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
ISSUE_VALUE_CHARS = 1000  # an issue keeps each value of its row up to this, then "…"
PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 120
PREVIEW_KEEP = timedelta(days=1)  # an upload nobody mapped is deleted after this
SAMPLE_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
LONG_HEADER_CHARS = 10_000  # a "header" longer than this is a whole file on one line
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

csv.field_size_limit(2**31 - 1)  # long texts get our own "too long" error, not csv's
logger = logging.getLogger(__name__)


class ImportRejected(Exception):
    """The file cannot be imported; nothing was written."""

    job: ImportJob | None = None

    def __init__(self, reason: str, *, line: int | None = None):
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


class ImportBusy(Exception):
    """Another import of the project is running; this one waits (or the user runs it later)."""


class ImportLost(Exception):
    """The job was marked failed while it ran (stale, e.g. the database stalled too long)."""


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
GARBLED_LINES = 0.2  # warn when this share of the sample's non-ASCII lines look like mojibake
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
            f"0x{sample[utf8_error.start]:02x}); declare the encoding", line=line)
    start = sample.rfind(b"\n", 0, utf8_error.start) + 1
    end = sample.find(b"\n", utf8_error.start)
    raw_line = sample[start:end if end >= 0 else len(sample)]
    options = "; ".join(
        f"{NAMES.get(r.encoding, r.encoding)} reads {raw_line.decode(r.encoding, 'replace')[:60]!r}"
        for r in readings[:2])
    raise ImportRejected(
        f"cannot tell the encoding of this file: {options}. Declare the right one "
        "(e.g. gb18030 or cp1252)", line=line)


def _sample_lines(sample: bytes, encoding: str, errors: str = "strict") -> list[str]:
    """The sample's whole lines with a non-ASCII character, decoded (a cut last line dropped)."""
    if len(sample) >= SAMPLE_BYTES and b"\n" in sample:
        sample = sample[:sample.rindex(b"\n")]
    return [raw.decode(encoding, errors) for raw in sample.split(b"\n") if not raw.isascii()]


def encoding_doubt(sample: bytes, encoding: str) -> tuple[str, str]:
    """(warning, likely encoding) when the sample read in `encoding` looks like mojibake
    (trainer.mojibake): ("", "") when it reads well. The likely encoding is the one of UTF-8,
    GB18030 and Windows-1252 that reads the same bytes with clearly fewer garbled lines; none
    when the text itself is garbled (UTF-8 once misread and saved again), which no encoding
    undoes."""
    from trainer.mojibake import garbled_count, looks_garbled, misread_utf8

    lines = _sample_lines(sample, encoding, errors="replace")
    garbled = [i for i, line in enumerate(lines) if looks_garbled(line)]
    if not garbled or len(garbled) < GARBLED_LINES * len(lines):
        return "", ""
    name = encoding_name(encoding)
    seen = _visible(lines[garbled[0]])
    readings = []
    for other in ("utf-8", *LEGACY_ENCODINGS):
        if other == encoding:
            continue
        try:
            other_lines = _sample_lines(sample, other)
        except UnicodeDecodeError:
            continue
        readings.append((garbled_count(other_lines), other, other_lines))
    better = [r for r in sorted(readings) if r[0] * 4 <= len(garbled)]
    if better:
        _, other, other_lines = better[0]
        right = encoding_name(other)
        return (f"{len(garbled)} of the first {len(lines)} lines with non-ASCII characters look "
                f"garbled read as {name} (mojibake: “{seen}”); read as {right} the same line "
                f"says “{_visible(other_lines[garbled[0]])}”. The file is probably {right}: "
                f"declare {other}.", other)
    misread = misread_utf8(lines[garbled[0]])
    if misread:
        return (f"the texts of this file look garbled (mojibake: “{seen}” for "
                f"“{_visible(misread[1])}”): they were UTF-8 once read as "
                f"{encoding_name(codecs.lookup(misread[0]).name)} and saved again, which no "
                "encoding undoes. Repair the file where it was made before importing it.", "")
    return (f"{len(garbled)} of the first {len(lines)} lines with non-ASCII characters look "
            f"garbled read as {name} (mojibake: “{seen}”); check the file's encoding.", "")


def encoding_name(codec: str) -> str:
    """How people call an encoding Python names `codec` (codecs.lookup(...).name)."""
    return {"iso8859-1": "Latin-1"}.get(codec) or NAMES.get(codec, codec.upper())


def _visible(line: str) -> str:
    """A line shortened for a message, without the invisible characters mojibake brings."""
    return _shorten("".join(c for c in line.strip() if c.isprintable()), 60)


def row_max_bytes() -> int:
    """The longest line (a row) the importer reads: room for a text of IMPORT_MAX_TEXT_CHARS
    in any encoding and its other columns. A longer one is refused by its size, unread."""
    return max(1024 * 1024, 8 * settings.IMPORT_MAX_TEXT_CHARS)


def _overlong(number: int, size: int, ended: bool) -> ImportRejected:
    limit = row_max_bytes()
    if number == 1 and not ended:
        return ImportRejected(
            f"the file is one line of {size:,} bytes with no line break and has no rows: a "
            "CSV or JSON lines file has one line a row. Is it in another format, or were its "
            "line breaks lost?", line=1)
    return ImportRejected(
        f"the line is {size:,} bytes, longer than a row may be ({limit:,} bytes; a text holds "
        f"at most {settings.IMPORT_MAX_TEXT_CHARS:,} characters); it was not read",
        line=number)


def _bounded_lines(fileobj: IO[bytes], separator: bytes) -> Iterator[bytes]:
    """The lines of a binary file, each with its separator; a line over row_max_bytes()
    raises ImportRejected once its length is known, without ever holding more than a chunk
    of it (one 100 MB line must not cost a web process 100 MB)."""
    limit = row_max_bytes()
    number, rest = 0, b""
    while chunk := fileobj.read(CHUNK_BYTES):
        *lines, rest = (rest + chunk).split(separator)
        for line in lines:
            number += 1
            yield line + separator
        if len(rest) > limit:
            size, ended = len(rest), False
            while chunk := fileobj.read(CHUNK_BYTES):  # measured, not kept
                cut = chunk.find(separator)
                if cut >= 0:
                    size, ended = size + cut, True
                    break
                size += len(chunk)
            raise _overlong(number + 1, size, ended)
    if rest:
        yield rest


def _raw_lines(fileobj: IO[bytes]) -> Iterator[bytes]:
    r"""The file's lines. A file whose lines end with \r alone (classic Mac OS, Excel's "CSV
    (Macintosh)") has no \n at all: it is split on \r instead of read as one line."""
    start = fileobj.tell()
    head = fileobj.read(SAMPLE_BYTES)
    fileobj.seek(start)
    separator = b"\r" if b"\r" in head and b"\n" not in head else b"\n"
    yield from _bounded_lines(fileobj, separator)


def _decoded_lines(fileobj: IO[bytes], encoding: str, counter: _Bytes) -> Iterator[str]:
    for number, raw in enumerate(_raw_lines(fileobj), start=1):
        counter.read += len(raw)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ImportRejected(
                f"cannot decode bytes as {encoding} "
                f"({exc.reason} at byte {exc.start + 1} of the line); "
                "declare the right encoding",
                line=number,
            ) from None
        if "\x00" in text:
            raise ImportRejected("binary data (NUL byte) in a text file", line=number)
        yield text.removeprefix("\ufeff") if number == 1 else text


def _csv_rows(
    lines: Iterable[str], delimiter: str, required: list[str]
) -> Iterator[tuple[int, dict]]:
    lines = iter(lines)
    first = next(lines, None)
    reader = csv.reader(lines if first is None else chain([first], lines),
                        delimiter=delimiter, strict=True)
    try:
        header = [restore_formula(name.strip()) for name in next(reader)]
    except StopIteration:
        raise ImportRejected("the file is empty", line=1) from None
    except csv.Error as exc:
        raise ImportRejected(f"malformed CSV header: {exc}", line=reader.line_num) from None
    missing = [name for name in required if name not in header]
    if missing:
        raise ImportRejected(
            f"no column {', '.join(map(repr, missing))} in the header ({_columns(header)})",
            line=1,
        )
    rows = 0
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            if not rows and reader.line_num == 1 and len(first or "") > LONG_HEADER_CHARS:
                ended = first.endswith(("\n", "\r"))
                raise ImportRejected(
                    f"the file is one line of {len(first):,} characters"
                    f"{'' if ended else ' with no line break'} and has no rows: a CSV has a "
                    "header line, then one line a row. Is it in another format, or were its "
                    "line breaks lost?", line=1) from None
            if not rows:
                raise ImportRejected("the file has a header but no rows", line=start) from None
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):  # where the quote opened, not the EOF
                raise ImportRejected(
                    "malformed CSV: a quoted field opened in this row is never closed "
                    "(the file ends inside it)", line=start) from None
            raise ImportRejected(f"malformed CSV: {exc}", line=reader.line_num) from None
        if not values:
            continue  # blank line
        if len(values) != len(header):
            raise ImportRejected(
                f"malformed CSV: {len(values)} fields where the header has {len(header)}",
                line=start,
            )
        rows += 1
        yield start, dict(zip(header, map(restore_formula, values), strict=True))


def _columns(header: list[str], shown: int = 3, width: int = 30) -> str:
    """A short description of a header: a binary or very wide one must not fill the message."""
    names = ", ".join(repr(name[:width] + ("…" if len(name) > width else ""))
                      for name in header[:shown])
    more = f" and {len(header) - shown} more" if len(header) > shown else ""
    return f"it has {len(header)} column{'s' if len(header) != 1 else ''}: {names}{more}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _issue_row(row: dict) -> dict:
    """The row as read, to list and to download; a value is cut when very long."""
    kept = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = _shorten(value, ISSUE_VALUE_CHARS)
        elif value is not None:
            try:
                text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except ValueError:  # NaN or Infinity, which PostgreSQL's jsonb cannot hold
                value = text = json.dumps(value, ensure_ascii=False)
            if len(text) > ISSUE_VALUE_CHARS:
                value = _shorten(text, ISSUE_VALUE_CHARS)
        kept[str(key)] = value
    return kept


def _jsonl_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    number = rows = 0
    for number, text in enumerate(lines, start=1):  # noqa: B007 (read after the loop)
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
        rows += 1
        yield number, obj
    if not rows:
        _no_rows(number)


def _no_rows(lines: int) -> None:
    if not lines:
        raise ImportRejected("the file is empty", line=1)
    raise ImportRejected("the file has no rows", line=lines)


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
        _no_rows(here())
    while True:
        if not skip_ws():
            raise ImportRejected("invalid JSON: the array is not closed", line=here())
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > max_buffer:
                    raise ImportRejected(
                        f"an object longer than {max_buffer:,} characters: longer than a row "
                        f"may be (a text holds at most {settings.IMPORT_MAX_TEXT_CHARS:,} "
                        "characters); it was not read", line=here()) from None
                if not more():
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
        job: ImportJob,
        counter: _Bytes,
    ) -> None:
        if split not in Item.Split.values:
            raise ImportRejected(f"unknown split {split!r}; use pool or gold")
        self.project = project
        self.job = job
        self.counter = counter
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
        self.issues: list[dict] = []  # ImportIssue field values, written with the next batch
        self.seen: set[bytes] = set()
        self.batch: list[tuple[int, dict, dict]] = []  # (line, Item field values, row)
        self.items = _Writer(Item)
        self.issue_writer = _Writer(ImportIssue)

    def required_columns(self) -> list[str]:
        named = [
            self.text_column,
            self.label_column,
            self.id_column,
            self.kind_column,
            *self.meta_columns,
        ]
        return [c for c in named if c]

    def note(self, line: int, kind: str, reason: str, row: dict) -> None:
        if len(self.report) < REPORT_LIMIT:
            self.report.append({"line": line, "reason": reason})
        self.issues.append({"job_id": self.job.pk, "line": line, "kind": kind,
                            "reason": reason[:500], "row": _issue_row(row)})

    def run(self, rows: Iterable[tuple[int, dict]], progress: Callable[[], None] | None) -> None:
        self.project_had_items = Item.objects.filter(project=self.project).exists()
        for line, row in rows:
            self.add(line, row)
            if len(self.batch) + len(self.issues) >= settings.IMPORT_BATCH_SIZE:
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
            return self.invalid(line, "empty text after cleaning", row)
        if len(clean) > self.max_chars:
            return self.invalid(
                line, f"text is {len(clean):,} characters, over the limit of {self.max_chars:,}",
                row,
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
            return self.note(line, ImportIssue.Kind.DUPLICATE,
                             "duplicate: same clean text earlier in the file", row)
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
            "import_job_id": self.job.pk,
            "staged": True,
        }
        self.batch.append((line, values, row))

    def invalid(self, line: int, reason: str, row: dict) -> None:
        if not self.skip_invalid:
            raise ImportRejected(
                f"{reason} (fix the row, or choose to skip invalid rows)", line=line
            )
        self.rejected += 1
        self.note(line, ImportIssue.Kind.REJECTED, reason, row)

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
        if not self.batch and not self.issues:
            return
        existing = set()
        if self.project_had_items:  # an empty project can only collide with this file
            hashes = [values["content_hash"] for _, values, _ in self.batch]
            existing = set(
                Item.objects.filter(project=self.project, content_hash__in=hashes).values_list(
                    "content_hash", flat=True
                )
            )
        new = []
        for line, values, row in self.batch:
            if values["content_hash"] in existing:
                self.duplicates += 1
                self.note(line, ImportIssue.Kind.DUPLICATE,
                          "duplicate: the project already has this text", row)
            else:
                new.append(values)
        prepared, issues = self.items.prepare(new), self.issue_writer.prepare(self.issues)
        try:
            with transaction.atomic():  # one short write: labelers' writes get in between
                self.items.write(prepared)
                self.issue_writer.write(issues)
                self.imported += len(new)
                _beat(self.job, bytes_read=self.counter.read, imported=self.imported,
                      duplicates=self.duplicates, rejected=self.rejected)
        except IntegrityError:
            raise ImportRejected(
                "another import added some of these texts to the project meanwhile; run it again",
                line=self.batch[0][0],
            ) from None
        self.batch, self.issues = [], []


class _Writer:
    """Rows of a model (items, import issues) to the database: `prepare` (CPU, outside any
    transaction) turns field values into database values, `write` (inside the batch's short
    transaction) only sends them.

    PostgreSQL: COPY (about twice as fast as INSERT for big files). Others: one executemany
    INSERT; on SQLite, Django's bulk_create splits a batch into INSERTs of ~45 rows and
    builds each in Python, all while holding the only write lock labelers need too.
    Fields a row does not name get the model's defaults, so new fields with a default need
    no change here.
    """

    def __init__(self, model: type[models.Model]) -> None:
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.json_fields = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        self.copy = connection.vendor == "postgresql"
        table = connection.ops.quote_name(model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        if self.copy:
            self.sql = f"COPY {table} ({columns}) FROM STDIN"
        else:
            marks = ", ".join(["%s"] * len(self.fields))
            self.sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"

    def prepare(self, rows: list[dict]) -> list[list]:
        now = timezone.now()
        defaults = []
        for field in self.fields:
            auto = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
            defaults.append((field, now if auto else field.get_default()))
        prepared = []
        for values in rows:
            row = []
            for field, default in defaults:
                value = values.get(field.attname, default)
                if self.copy:
                    if field.attname in self.json_fields and value is not None:
                        value = json.dumps(value, ensure_ascii=False)
                else:
                    value = field.get_db_prep_save(value, connection)
                row.append(value)
            prepared.append(row)
        return prepared

    def write(self, prepared: list[list]) -> None:
        if not prepared:
            return
        # wrap_database_errors: psycopg's errors from the raw COPY become Django's
        # (IntegrityError)
        if not self.copy:
            with connection.cursor() as cursor:
                cursor.executemany(self.sql, prepared)
            return
        with (
            connection.wrap_database_errors,
            connection.cursor() as cursor,
            cursor.cursor.copy(self.sql) as copy,
        ):
            for row in prepared:
                copy.write_row(row)


def _beat(job: ImportJob, **progress) -> None:
    """Record progress (and that the job is alive); ImportLost once it is no longer running."""
    alive = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
        heartbeat_at=timezone.now(), **progress)
    if not alive:
        raise ImportLost(f"import #{job.pk} was stopped while it ran")


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
    name = storages["artifacts"].save(
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
        rows = list(islice(_rows(fileobj, kind, enc, _Bytes(), required=[]), PREVIEW_ROWS))
    columns = list(dict.fromkeys(key for _, row in rows for key in row))
    cells = [
        (line, [_shorten(_as_text(row.get(column)), PREVIEW_CELL_CHARS) for column in columns])
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
    writer = csv.writer(_Echo())  # writerow() returns the formatted line
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
    counter = _Bytes()
    try:
        with ExitStack() as stack:
            if fileobj is None:
                path = path or stack.enter_context(_upload_local(job))
                fileobj = stack.enter_context(open(path, "rb"))  # noqa: SIM115
            kind = detect_format(job.filename, options["fmt"])
            row_options = {k: v for k, v in options.items() if k not in ("fmt", "encoding")}
            importer = _Importer(project=project, job=job, counter=counter, **row_options)
            staged_items_delete(project=project)  # left by an import killed earlier
            sample = fileobj.read(SAMPLE_BYTES)
            fileobj.seek(0)
            enc = detect_encoding(sample, options["encoding"])
            rows = _rows(fileobj, kind, enc, counter, required=importer.required_columns())
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
        transaction.on_commit(lambda: _enqueue_embedding(project.pk))
    if (
        job.imported
        and options["split"] == Item.Split.POOL
        and not project.model_versions.filter(is_active=True).exists()
    ):
        transaction.on_commit(lambda: _enqueue_seeding(project.pk))
    return job


def _rows(
    fileobj: IO[bytes], fmt: str, encoding: str, counter: _Bytes, *, required: list[str]
) -> Iterator[tuple[int, dict]]:
    """(line, row) for each row of the file; `required`: columns a CSV header must have."""
    if fmt == "json":
        return _json_array_rows(fileobj, encoding, counter)
    lines = _decoded_lines(fileobj, encoding, counter)
    if fmt == "jsonl":
        return _jsonl_rows(lines)
    return _csv_rows(lines, "\t" if fmt == "tsv" else ",", required)


def _lower_priority() -> None:
    """Let the web processes have the CPU first (settings.IMPORT_NICE; once per process: a
    nice increment cannot be undone without privileges)."""
    global _niced
    if settings.IMPORT_NICE and not _niced:
        os.nice(settings.IMPORT_NICE)
        _niced = True


_niced = False


def _publish(job: ImportJob, importer: _Importer) -> None:
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
        storages["artifacts"].delete(job.upload_path)


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


def _enqueue_embedding(project_id: int) -> None:
    """The fast loop reads an embedding of every pool item: embed the new ones."""
    enqueue("annotator.tasks.embed_pool_task", project_id)


def _enqueue_seeding(project_id: int) -> None:
    """Cold start: before the first model, queue items spread over the embedding space."""
    from annotator.services.ranking import seeding_request

    seeding_request(project_id)
