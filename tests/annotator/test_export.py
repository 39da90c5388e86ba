"""Exporting items with labels and provenance as CSV and JSONL."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotator.lib.cleaning import content_hash
from annotator.models import Annotation, Item, ModelVersion, Project
from annotator.services.exporting import COLUMNS, export_rows, parse_when
from annotator.services.importing import import_file
from trainer.agreement import consensus


def make_item(project, text, **fields):
    return Item.objects.create(
        project=project, raw_text=text, text=text, content_hash=content_hash(text), **fields
    )


@pytest.fixture
def data(project, labeler):
    max_ = get_user_model().objects.create_user("max")
    version = ModelVersion.objects.create(
        project=project, version=3, base_model="m", artifact_path="p"
    )
    items = {
        "agree": make_item(project, "Great shoes 👍", external_id="A1", meta={"brand": "acme"}),
        "tie": make_item(project, "质量一般", external_id="A2"),
        "adjudicated": make_item(project, "Okay I guess", final_label="neutral"),
        "gold": make_item(project, "Terrible", split="gold", gold_label="negative"),
        "unlabeled": make_item(project, "Not seen yet"),
        "dialogue": make_item(
            project,
            "customer: hi\nagent: hello",
            kind="dialogue",
            turns=[{"speaker": "customer", "text": "hi"}, {"speaker": "agent", "text": "hello"}],
        ),
    }
    Annotation.objects.create(
        item=items["agree"],
        labeler=labeler,
        label="positive",
        picked_by="uncertainty",
        strategy="margin",
        model_version=version,
        predicted_label="positive",
        predicted_confidence=0.61,
        seconds_spent=4.5,
    )
    Annotation.objects.create(
        item=items["agree"], labeler=max_, label="positive", picked_by="overlap"
    )
    Annotation.objects.create(item=items["tie"], labeler=labeler, label="negative")
    Annotation.objects.create(item=items["tie"], labeler=max_, label="positive")
    Annotation.objects.create(item=items["adjudicated"], labeler=labeler, label="negative")
    Annotation.objects.create(item=items["adjudicated"], labeler=max_, label="positive")
    Annotation.objects.create(item=items["gold"], labeler=max_, label="negative", picked_by="gold")
    Annotation.objects.create(item=items["dialogue"], labeler=labeler, label="positive")
    return items


def jsonl(**options):
    return [json.loads(line) for line in export_rows(fmt="jsonl", **options)]


def by_text(rows):
    return {row["text"]: row for row in rows}


def test_jsonl_has_one_row_per_item_with_provenance(project, data):
    rows = jsonl(project=project)
    assert [row["item_id"] for row in rows] == sorted(item.pk for item in data.values())
    agree = by_text(rows)["Great shoes 👍"]
    assert {k: v for k, v in agree.items() if k not in ("annotated_at", "annotations")} == {
        "item_id": data["agree"].pk,
        "external_id": "A1",
        "text": "Great shoes 👍",
        "label": "positive",
        "labels": ["positive", "positive"],
        "labelers": ["lena", "max"],
        "picked_by": "uncertainty",
        "strategy": "margin",
        "model_version": 3,
        "ranked_by_head": None,
        "predicted_label": "positive",
        "predicted_confidence": 0.61,
        "split": "pool",
        "gold_label": "",
        "imported_label": "",
        "kind": "review",
        "adjudicated_by": "",
        "meta": '{"brand": "acme"}',
        "turns": [],
    }
    first = Annotation.objects.filter(item=data["agree"]).earliest("created_at")
    assert agree["annotated_at"] == first.created_at.isoformat()
    assert [a["labeler"] for a in agree["annotations"]] == ["lena", "max"]
    assert agree["annotations"][0]["seconds_spent"] == 4.5
    assert agree["annotations"][1] | {"created_at": ""} == {
        "labeler": "max",
        "label": "positive",
        "created_at": "",
        "seconds_spent": None,
        "picked_by": "overlap",
        "strategy": "",
        "model_version": None,
        "ranked_by_head": None,
        "predicted_label": "",
        "predicted_confidence": None,
    }


def test_every_jsonl_row_has_the_same_keys_and_types(project, data):
    rows = jsonl(project=project)
    for row in rows:
        assert list(row) == [*COLUMNS, "annotations"]
        for key in (
            "external_id",
            "text",
            "label",
            "annotated_at",
            "picked_by",
            "strategy",
            "predicted_label",
            "gold_label",
            "imported_label",
            "adjudicated_by",
            "meta",
        ):
            assert isinstance(row[key], str), key
        assert isinstance(row["labels"], list) and isinstance(row["turns"], list)


def test_the_label_is_adjudicated_else_the_majority_and_empty_on_a_tie(project, data):
    rows = by_text(jsonl(project=project))
    assert rows["质量一般"]["label"] == ""
    assert rows["质量一般"]["labels"] == ["negative", "positive"]
    assert rows["Okay I guess"]["label"] == "neutral"
    assert rows["Not seen yet"]["label"] == ""


def test_consensus_needs_a_strict_majority():
    assert consensus("", ["a", "b", "a"]) == "a"
    assert consensus("", ["a", "b"]) == ""
    assert consensus("", []) == ""
    assert consensus("c", ["a", "a"]) == "c"


def test_csv_has_a_header_and_joins_lists(project, data):
    rows = list(csv.DictReader(io.StringIO("".join(export_rows(project=project, fmt="csv")))))
    assert list(rows[0]) == COLUMNS
    assert len(rows) == len(data)
    agree = {row["text"]: row for row in rows}["Great shoes 👍"]
    assert (
        agree["labels"],
        agree["labelers"],
        agree["model_version"],
        agree["predicted_confidence"],
    ) == ("positive;positive", "lena;max", "3", "0.61")
    dialogue = {row["text"]: row for row in rows}["customer: hi\nagent: hello"]
    assert json.loads(dialogue["turns"])[1] == {"speaker": "agent", "text": "hello"}
    assert {row["text"]: row for row in rows}["质量一般"]["model_version"] == ""


def test_labeled_only_skips_items_without_labels(project, data):
    texts = {row["text"] for row in jsonl(project=project, labeled_only=True)}
    assert "Not seen yet" not in texts
    assert len(texts) == len(data) - 1


def test_gold_only_keeps_the_gold_slice(project, data):
    rows = jsonl(project=project, gold_only=True)
    assert [(row["text"], row["gold_label"], row["split"]) for row in rows] == [
        ("Terrible", "negative", "gold")
    ]


def test_the_labeler_filter_keeps_that_labelers_annotations(project, data, labeler):
    rows = by_text(jsonl(project=project, labeler=labeler))
    assert set(rows) == {"Great shoes 👍", "质量一般", "Okay I guess", "customer: hi\nagent: hello"}
    assert rows["质量一般"]["labels"] == ["negative"]
    assert rows["质量一般"]["label"] == "negative"
    assert rows["Great shoes 👍"]["labelers"] == ["lena"]


def test_the_date_range_filters_on_annotation_time(project, data):
    now = timezone.now()
    Annotation.objects.filter(item=data["tie"]).update(created_at=now - timedelta(days=10))
    Annotation.objects.filter(item=data["gold"]).update(created_at=now - timedelta(days=3))
    rows = jsonl(project=project, since=now - timedelta(days=5), until=now - timedelta(days=1))
    assert [row["text"] for row in rows] == ["Terrible"]
    older = jsonl(project=project, until=now - timedelta(days=5))
    assert [row["text"] for row in older] == ["质量一般"]


def test_parse_when_reads_dates_and_datetimes():
    assert parse_when("2026-01-31").isoformat() == "2026-01-31T00:00:00+00:00"
    assert parse_when("2026-01-31T12:30:00+02:00").isoformat() == "2026-01-31T12:30:00+02:00"
    with pytest.raises(ValueError, match="use YYYY-MM-DD"):
        parse_when("last week")


def test_items_are_read_in_chunks_without_losing_any(project, data):
    rows = list(export_rows(project=project, fmt="jsonl", chunk_size=2))
    assert len(rows) == len(data)


def test_other_projects_items_are_not_exported(project, other_project, data):
    make_item(other_project, "elsewhere")
    assert "elsewhere" not in {row["text"] for row in jsonl(project=project)}


def test_the_jsonl_loads_with_the_datasets_json_loader(project, data, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "export.jsonl"
    path.write_text("".join(export_rows(project=project, fmt="jsonl")), encoding="utf-8")
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "c")
    )
    assert dataset.num_rows == len(data)
    assert dataset.column_names == [*COLUMNS, "annotations"]
    row = next(r for r in dataset if r["text"] == "Great shoes 👍")
    assert (row["label"], row["labels"], row["model_version"]) == (
        "positive",
        ["positive", "positive"],
        3,
    )
    assert row["annotations"][0]["predicted_confidence"] == 0.61


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_round_trip_export_then_import_gives_the_same_items_and_labels(
    project, data, tmp_path, fmt
):
    path = tmp_path / f"export.{fmt}"
    path.write_text(
        "".join(export_rows(project=project, fmt=fmt, labeled_only=True)), encoding="utf-8"
    )
    copy = Project.objects.create(name="Copy")
    job = import_file(
        project=copy,
        path=path,
        label_column="label",
        id_column="external_id",
        meta_columns=["meta"],
        kind_column="kind",
    )
    original = Item.objects.filter(project=project).exclude(pk=data["unlabeled"].pk)
    assert job.imported == original.count()

    def summary(items, label):
        return sorted((i.text, i.external_id, i.kind, i.meta, i.turns, label(i)) for i in items)

    expected = summary(
        original, lambda i: consensus(i.final_label, [a.label for a in i.annotations.all()])
    )
    assert summary(Item.objects.filter(project=copy), lambda i: i.imported_label) == expected


FORMULAS = ["=HYPERLINK(\"http://evil\",\"click\")", "+1+1", "-2+3", "@SUM(A1)",
            "'=already quoted", "''=twice", "'tis fine"]


def test_csv_cells_a_spreadsheet_would_run_start_with_an_apostrophe(project):
    for text in FORMULAS:
        make_item(project, text, meta={"note": "=cmd|'/c calc'!A0"})
    rows = list(csv.DictReader(io.StringIO("".join(export_rows(project=project, fmt="csv")))))
    exported = {row["text"] for row in rows}
    assert exported == {"'=HYPERLINK(\"http://evil\",\"click\")", "'+1+1", "'-2+3", "'@SUM(A1)",
                        "''=already quoted", "'''=twice", "'tis fine"}
    assert all(not row[c].startswith(("=", "+", "-", "@")) for row in rows for c in row)


def test_neutralized_csv_cells_import_back_as_they_were(project, tmp_path):
    for text in FORMULAS:
        make_item(project, text)
    path = tmp_path / "export.csv"
    path.write_text("".join(export_rows(project=project, fmt="csv", bom=True)), encoding="utf-8")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads the Chinese right
    copy = Project.objects.create(name="Copy")
    import_file(project=copy, path=path)
    assert sorted(Item.objects.filter(project=copy).values_list("text", flat=True)) == sorted(
        FORMULAS)


def test_jsonl_keeps_texts_as_they_are(project):
    make_item(project, "=1+1")
    row = json.loads("".join(export_rows(project=project, fmt="jsonl")))
    assert row["text"] == "=1+1"
