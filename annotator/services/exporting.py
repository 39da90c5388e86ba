"""Export a project's items, one row per item, streamed as CSV or JSONL.

Items are read in primary-key order in chunks (keyset pagination), with one
query for the annotations of each chunk, so memory stays constant however
large the project is. Rows carry provenance: who labeled, when, how the item
was picked and what the model predicted then.

Types are the same in every row so the JSONL loads with
`datasets.load_dataset("json", ...)`: strings are "" (never null) when empty,
lists are [] when empty, meta is a JSON-encoded string; only model_version and
ranked_by_head (int: the fine-tuned version / the fast loop's head fit that ranked the item)
and predicted_confidence / seconds_spent (float) are null when absent.

CSV cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a
carriage return, after any apostrophes) get one more leading apostrophe (OWASP's advice
against CSV injection; annotator.lib.csv_safe); the importer takes exactly one off again, so
export -> import gives back the same texts. `bom=True` starts a CSV with a UTF-8 BOM, so
Excel reads Chinese.
"""

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotator.lib.csv_safe import Echo, neutralize_formula
from annotator.models import Annotation, Item, Project
from trainer.agreement import consensus

FORMATS = ("csv", "jsonl")
COLUMNS = [
    "item_id",
    "external_id",
    "text",
    "label",
    "labels",
    "labelers",
    "annotated_at",
    "picked_by",
    "strategy",
    "model_version",
    "ranked_by_head",
    "predicted_label",
    "predicted_confidence",
    "split",
    "gold_label",
    "imported_label",
    "kind",
    "adjudicated_by",
    "meta",
    "turns",
]  # JSONL rows add "annotations": every annotation with its own provenance
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}

_ITEM_FIELDS = [
    "id",
    "external_id",
    "text",
    "split",
    "gold_label",
    "imported_label",
    "kind",
    "meta",
    "turns",
    "final_label",
    "adjudicated_by__username",
]
_ANNOTATION_FIELDS = [
    "item_id",
    "label",
    "labeler__username",
    "created_at",
    "seconds_spent",
    "picked_by",
    "strategy",
    "model_version__version",
    "ranked_by_head_id",
    "predicted_label",
    "predicted_confidence",
]


def parse_when(value: str) -> datetime:
    """'2026-01-31' (midnight, current time zone) or an ISO datetime; ValueError if neither."""
    value = value.strip()
    when = parse_datetime(value)
    if when is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(f"not a date or datetime: {value!r} (use YYYY-MM-DD)")
        when = datetime(day.year, day.month, day.day)
    return timezone.make_aware(when) if timezone.is_naive(when) else when


def export_rows(
    *,
    project: Project,
    fmt: str = "jsonl",
    labeled_only: bool = False,
    gold_only: bool = False,
    labeler=None,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int = 2000,
    bom: bool = False,
) -> Iterator[str]:
    """Yield the export in pieces: a CSV header and one line per item, or one JSONL line per item.

    labeler / since / until select annotations (since inclusive, until
    exclusive); with any of them only items with a selected annotation are
    exported and label/labels come from the selected annotations.
    labeled_only keeps items with an annotation or an adjudicated label.
    bom starts a CSV with a UTF-8 byte order mark (for Excel).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    items = Item.objects.filter(project=project)
    if gold_only:
        items = items.filter(split=Item.Split.GOLD)
    annotations = Annotation.objects.all()  # narrowed to each chunk's items below
    if labeler is not None:
        annotations = annotations.filter(labeler=labeler)
    if since is not None:
        annotations = annotations.filter(created_at__gte=since)
    if until is not None:
        annotations = annotations.filter(created_at__lt=until)
    if labeler is not None or since is not None or until is not None:
        items = items.filter(Exists(annotations.filter(item=OuterRef("pk"))))
    elif labeled_only:
        items = items.filter(
            Q(Exists(Annotation.objects.filter(item=OuterRef("pk")))) | ~Q(final_label="")
        )

    writer = csv.writer(Echo())  # writerow() returns the formatted line
    if fmt == "csv":
        yield ("\ufeff" if bom else "") + writer.writerow(COLUMNS)
    last = 0
    while True:
        chunk = list(items.filter(pk__gt=last).order_by("pk").values(*_ITEM_FIELDS)[:chunk_size])
        if not chunk:
            return
        last = chunk[-1]["id"]
        by_item = defaultdict(list)
        selected = annotations.filter(item_id__in=[row["id"] for row in chunk])
        for ann in selected.order_by("item_id", "created_at", "pk").values(*_ANNOTATION_FIELDS):
            by_item[ann["item_id"]].append(ann)
        for row in chunk:
            record = _record(row, by_item.get(row["id"], []))
            if fmt == "csv":
                yield writer.writerow(_csv_values(record))
            else:
                yield json.dumps(record, ensure_ascii=False) + "\n"


def _record(item: dict, anns: list[dict]) -> dict:
    first = anns[0] if anns else {}
    labels = [a["label"] for a in anns]
    return {
        "item_id": item["id"],
        "external_id": item["external_id"],
        "text": item["text"],
        "label": consensus(item["final_label"], labels),
        "labels": labels,
        "labelers": [a["labeler__username"] for a in anns],
        "annotated_at": first["created_at"].isoformat() if anns else "",
        "picked_by": first.get("picked_by", ""),
        "strategy": first.get("strategy", ""),
        "model_version": first.get("model_version__version"),
        "ranked_by_head": first.get("ranked_by_head_id"),
        "predicted_label": first.get("predicted_label", ""),
        "predicted_confidence": _float(first.get("predicted_confidence")),
        "split": item["split"],
        "gold_label": item["gold_label"],
        "imported_label": item["imported_label"],
        "kind": item["kind"],
        "adjudicated_by": item["adjudicated_by__username"] or "",
        "meta": json.dumps(item["meta"] or {}, ensure_ascii=False, sort_keys=True),
        "turns": item["turns"] or [],
        "annotations": [
            {
                "labeler": a["labeler__username"],
                "label": a["label"],
                "created_at": a["created_at"].isoformat(),
                "seconds_spent": _float(a["seconds_spent"]),
                "picked_by": a["picked_by"],
                "strategy": a["strategy"],
                "model_version": a["model_version__version"],
                "ranked_by_head": a["ranked_by_head_id"],
                "predicted_label": a["predicted_label"],
                "predicted_confidence": _float(a["predicted_confidence"]),
            }
            for a in anns
        ],
    }


def _float(value) -> float | None:
    return None if value is None else float(value)


def _csv_values(record: dict) -> list:
    values = []
    for column in COLUMNS:
        value = record[column]
        if column in ("labels", "labelers"):
            value = ";".join(value)
        elif column == "turns":
            value = json.dumps(value, ensure_ascii=False) if value else ""
        elif value is None:
            value = ""
        values.append(neutralize_formula(value))
    return values
