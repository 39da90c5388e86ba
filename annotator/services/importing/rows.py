"""The row rules: what a row must hold to become an item (clean text, label, kind, turns,
meta), what makes it a duplicate or an invalid row (an ImportIssue), and the Importer that
turns rows into staged items in short batches. services.items runs the same rules on rows
pushed through the API.
"""

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotator.lib.cleaning import clean_text
from annotator.models import ImportIssue, ImportJob, Item, Project, TextKind
from annotator.services.importing.errors import ImportLost, ImportRejected
from annotator.services.importing.formats import ByteCounter, shorten
from annotator.services.importing.writer import BulkWriter

REPORT_LIMIT = 1000  # report entries kept on the ImportJob; counts stay exact
ISSUE_VALUE_CHARS = 1000  # an issue keeps each value of its row up to this, then "…"


def _issue_row(row: dict) -> dict:
    """The row as read, to list and to download; a value is cut when very long."""
    kept = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = shorten(value, ISSUE_VALUE_CHARS)
        elif value is not None:
            try:
                text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except ValueError:  # NaN or Infinity, which PostgreSQL's jsonb cannot hold
                value = text = json.dumps(value, ensure_ascii=False)
            if len(text) > ISSUE_VALUE_CHARS:
                value = shorten(text, ISSUE_VALUE_CHARS)
        kept[str(key)] = value
    return kept


class Importer:
    """Rows to staged items of `project` for `job`, in batches of settings.IMPORT_BATCH_SIZE:
    `add` applies the row rules (raising ImportRejected on a file-level error, noting
    duplicates and invalid rows as issues), `flush` writes a batch in one short transaction.
    Subclassed by services.items for rows pushed through the API."""

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
        counter: ByteCounter,
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
        self.items = BulkWriter(Item)
        self.issue_writer = BulkWriter(ImportIssue)

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


def _beat(job: ImportJob, **progress) -> None:
    """Record progress (and that the job is alive); ImportLost once it is no longer running."""
    alive = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
        heartbeat_at=timezone.now(), **progress)
    if not alive:
        raise ImportLost(f"import #{job.pk} was stopped while it ran")
