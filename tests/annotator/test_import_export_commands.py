"""The import_items and export_items management commands."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotator.lib.cleaning import content_hash
from annotator.models import Annotation, Item


def test_import_items_prints_counts_and_the_report(project, tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text(
        "text,label\nGood,positive\nGood,positive\n,negative\nBad,negative\n", encoding="utf-8"
    )
    call_command(
        "import_items",
        project.name,
        str(path),
        "--label-column",
        "label",
        "--skip-invalid",
        "--no-progress",
    )
    out = capsys.readouterr().out
    assert "2 imported, 1 duplicate, 1 rejected" in out
    assert "line 3: duplicate: same clean text earlier in the file" in out
    assert "line 4: empty text after cleaning" in out
    assert list(Item.objects.order_by("pk").values_list("text", "imported_label")) == [
        ("Good", "positive"),
        ("Bad", "negative"),
    ]


def test_import_items_finds_the_project_by_id_and_takes_options(project, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text('{"body": "物流很快", "sku": "9"}\n', encoding="gb18030")
    call_command(
        "import_items",
        str(project.pk),
        str(path),
        "--format",
        "jsonl",
        "--encoding",
        "gb18030",
        "--text-column",
        "body",
        "--id-column",
        "sku",
        "--meta-column",
        "sku",
        "--split",
        "gold",
        "--no-progress",
    )
    item = Item.objects.get()
    assert (item.text, item.external_id, item.meta, item.split) == (
        "物流很快",
        "9",
        {"sku": "9"},
        "gold",
    )


def test_import_items_fails_with_the_line_and_writes_nothing(project, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\nGood,positive\nBad,awful\n", encoding="utf-8")
    with pytest.raises(CommandError, match="nothing was written: line 3: label 'awful' is not in"):
        call_command(
            "import_items", project.name, str(path), "--label-column", "label", "--no-progress"
        )
    assert Item.objects.count() == 0


def test_import_items_rejects_unknown_projects_and_files(project, tmp_path):
    with pytest.raises(CommandError, match="no project 'Nope'"):
        call_command("import_items", "Nope", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_items", project.name, str(tmp_path / "x.csv"))


def test_export_items_writes_a_file(project, labeler, tmp_path):
    item = Item.objects.create(
        project=project, raw_text="Nice", text="Nice", content_hash=content_hash("Nice")
    )
    Item.objects.create(
        project=project, raw_text="Other", text="Other", content_hash=content_hash("Other")
    )
    Annotation.objects.create(item=item, labeler=labeler, label="positive")
    out = tmp_path / "out.jsonl"
    call_command(
        "export_items",
        project.name,
        "-o",
        str(out),
        "--labeled-only",
        "--labeler",
        "lena",
        "--since",
        "2000-01-01",
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(row["text"], row["label"]) for row in rows] == [("Nice", "positive")]


def test_export_items_writes_csv_to_stdout(project, capsys):
    Item.objects.create(
        project=project, raw_text="Nice", text="Nice", content_hash=content_hash("Nice")
    )
    call_command("export_items", project.name, "--format", "csv")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("item_id,external_id,text,label")
    assert lines[1].split(",")[2] == "Nice"


def test_export_items_rejects_bad_dates_and_users(project):
    with pytest.raises(CommandError, match="use YYYY-MM-DD"):
        call_command("export_items", project.name, "--since", "soon")
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("export_items", project.name, "--labeler", "ghost")
