"""Importing files: formats, encodings, column mapping, dialogue rows, dedupe, report."""

import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator.models import ImportJob, Item, TextKind
from annotator.services import importing
from annotator.services.importing import import_file


def write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def texts(project):
    return list(Item.objects.filter(project=project).order_by("pk").values_list("text", flat=True))


def test_it_imports_a_csv_with_cleaning_and_reports_counts(project, tmp_path):
    path = write(tmp_path, "reviews.csv", 'text\n"<b>Great</b> shoes &amp; fast"\n质量很好 👍\n')
    job = import_file(project=project, path=path)
    assert texts(project) == ["Great shoes & fast", "质量很好 👍"]
    assert Item.objects.get(text="Great shoes & fast").raw_text == "<b>Great</b> shoes &amp; fast"
    assert (job.status, job.imported, job.duplicates, job.rejected) == ("succeeded", 2, 0, 0)
    assert job.filename == "reviews.csv"


def test_it_reads_a_csv_whose_lines_end_with_cr_alone(project, tmp_path, settings):
    """Classic Mac OS line endings (Excel's "CSV (Macintosh)"): no \n in the whole file."""
    settings.IMPORT_BATCH_SIZE = 2
    rows = [f"review {i},fine {i}" for i in range(5)]
    rows[3] = 'review 3,"fine, on\rtwo lines"'
    path = write(tmp_path, "mac.csv", "id,text\r" + "\r".join(rows) + "\r")
    job = import_file(project=project, path=path, id_column="id")
    assert job.imported == 5
    assert texts(project)[3] == "fine, on two lines"  # a quoted line break, cleaned to a space
    assert list(Item.objects.order_by("pk").values_list("external_id", flat=True)) == [
        f"review {i}" for i in range(5)]


def test_it_imports_tsv(project, tmp_path):
    path = write(tmp_path, "reviews.tsv", "id\ttext\n1\tgood, really\n2\tbad\n")
    import_file(project=project, path=path, id_column="id")
    assert list(Item.objects.order_by("pk").values_list("external_id", "text")) == [
        ("1", "good, really"),
        ("2", "bad"),
    ]


def test_it_imports_jsonl(project, tmp_path):
    rows = [{"text": "nice", "sku": 12}, {"text": "awful", "sku": 13}]
    path = write(tmp_path, "reviews.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    import_file(project=project, path=path, meta_columns=["sku"])
    assert list(Item.objects.order_by("pk").values_list("text", "meta")) == [
        ("nice", {"sku": 12}),
        ("awful", {"sku": 13}),
    ]


def test_it_streams_a_json_array_across_chunk_boundaries(project, tmp_path, monkeypatch):
    monkeypatch.setattr(importing.formats, "CHUNK_BYTES", 7)
    rows = [{"text": f"review number {i} 好", "id": i} for i in range(30)]
    path = write(tmp_path, "reviews.json", json.dumps(rows, indent=2, ensure_ascii=False))
    job = import_file(project=project, path=path, id_column="id")
    assert job.imported == 30
    assert texts(project) == [f"review number {i} 好" for i in range(30)]


def test_it_takes_a_declared_format_over_the_extension(project, tmp_path):
    path = write(tmp_path, "export.txt", '{"text": "ok"}\n')
    import_file(project=project, path=path, fmt="jsonl")
    assert texts(project) == ["ok"]


def test_it_reads_utf8_with_a_byte_order_mark(project, tmp_path):
    path = write(tmp_path, "bom.csv", "\ufefftext\n好评\n")
    import_file(project=project, path=path)
    assert texts(project) == ["好评"]


def test_it_detects_a_gbk_file(project, tmp_path):
    path = write(
        tmp_path, "gbk.csv", "text,label\n质量很好，推荐购买,positive\n物流太慢,negative\n", "gbk"
    )
    import_file(project=project, path=path, label_column="label")
    assert list(Item.objects.order_by("pk").values_list("text", "imported_label")) == [
        ("质量很好,推荐购买", "positive"),
        ("物流太慢", "negative"),
    ]


def test_it_reads_a_declared_gb18030_file(project, tmp_path):
    path = write(tmp_path, "gb.jsonl", '{"text": "客服态度很好"}\n', "gb18030")
    import_file(project=project, path=path, encoding="gb18030")
    assert texts(project) == ["客服态度很好"]


def test_a_label_column_fills_gold_labels_for_the_gold_split(project, tmp_path):
    path = write(tmp_path, "gold.csv", "text,label\ngood,positive\nmeh,\n")
    import_file(project=project, path=path, label_column="label", split="gold")
    items = Item.objects.order_by("pk")
    assert [(i.split, i.gold_label, i.imported_label) for i in items] == [
        ("gold", "positive", ""),
        ("gold", "", ""),
    ]


def test_a_label_column_is_kept_as_pre_label_in_the_pool(project, tmp_path):
    path = write(tmp_path, "pre.csv", "text,label\ngood,positive\n")
    import_file(project=project, path=path, label_column="label")
    item = Item.objects.get()
    assert (item.split, item.gold_label, item.imported_label) == ("pool", "", "positive")


def test_it_maps_id_meta_and_kind_columns(project, tmp_path):
    path = write(tmp_path, "m.csv", "sku,body,brand,shop,kind\nA1,hello,acme,,query\n")
    import_file(
        project=project,
        path=path,
        text_column="body",
        id_column="sku",
        meta_columns=["brand", "shop"],
        kind_column="kind",
    )
    item = Item.objects.get()
    assert (item.external_id, item.text, item.meta, item.kind) == (
        "A1",
        "hello",
        {"brand": "acme"},
        "query",
    )


def test_items_take_the_projects_text_kind_by_default(project, tmp_path):
    project.text_kind = TextKind.SOCIAL
    project.save()
    import_file(project=project, path=write(tmp_path, "a.csv", "text\nhi there\n"))
    assert Item.objects.get().kind == "social"


def test_dialogue_rows_keep_their_turns_and_build_the_text(project, tmp_path):
    row = {
        "id": "c1",
        "turns": [
            {"speaker": "customer", "text": "<b>Where</b> is my   order?"},
            {"speaker": "agent", "text": "It ships today 📦"},
            {"speaker": "agent", "text": "\u200b"},
        ],
    }
    import_file(
        project=project, path=write(tmp_path, "chat.jsonl", json.dumps(row) + "\n"), id_column="id"
    )
    item = Item.objects.get()
    assert item.turns == [
        {"speaker": "customer", "text": "Where is my order?"},
        {"speaker": "agent", "text": "It ships today 📦"},
    ]
    assert item.text == "customer: Where is my order?\nagent: It ships today 📦"
    assert item.kind == "dialogue"
    assert json.loads(item.raw_text) == row["turns"]


def test_dialogue_turns_in_a_csv_column_are_read_as_json(project, tmp_path):
    turns = json.dumps(
        [{"speaker": "customer", "text": "退货"}, {"speaker": "agent", "text": "好的"}]
    )
    path = write(tmp_path, "chat.csv", f'text,turns\n,"{turns.replace(chr(34), chr(34) * 2)}"\n')
    import_file(project=project, path=path)
    assert Item.objects.get().text == "customer: 退货\nagent: 好的"


def test_it_dedupes_on_clean_text_within_the_file(project, tmp_path):
    path = write(tmp_path, "d.csv", "text\nNice bag\n<i>Nice</i>   bag\nOther\n")
    job = import_file(project=project, path=path)
    assert texts(project) == ["Nice bag", "Other"]
    assert (job.imported, job.duplicates) == (2, 1)
    assert job.report == [{"line": 3, "reason": "duplicate: same clean text earlier in the file"}]


def test_it_dedupes_against_items_already_in_the_project(project, other_project, tmp_path):
    import_file(project=project, path=write(tmp_path, "a.csv", "text\nNice bag\n"))
    import_file(project=other_project, path=write(tmp_path, "b.csv", "text\nNice bag\n"))
    job = import_file(project=project, path=write(tmp_path, "c.csv", "text\nNew one\nNice bag\n"))
    assert (job.imported, job.duplicates) == (1, 1)
    assert job.report == [{"line": 3, "reason": "duplicate: the project already has this text"}]
    assert Item.objects.filter(text="Nice bag").count() == 2  # once per project


def test_duplicates_are_found_across_batches(project, tmp_path, settings):
    settings.IMPORT_BATCH_SIZE = 2
    path = write(tmp_path, "d.csv", "text\na1\na2\na3\na1\na4\na2\n")
    job = import_file(project=project, path=path)
    assert (job.imported, job.duplicates) == (4, 2)
    assert [entry["line"] for entry in job.report] == [5, 7]


def test_items_get_a_random_key_between_zero_and_one(project, tmp_path):
    rows = "".join(f"review {i}\n" for i in range(50))
    import_file(project=project, path=write(tmp_path, "r.csv", "text\n" + rows))
    keys = list(Item.objects.values_list("random_key", flat=True))
    assert all(0 <= key < 1 for key in keys)
    assert len(set(keys)) == 50


def test_skip_invalid_rejects_empty_and_too_long_rows_into_the_report(project, tmp_path, settings):
    settings.IMPORT_MAX_TEXT_CHARS = 10
    path = write(tmp_path, "s.csv", "text\nfine\n<p> </p>\nthis one is far too long\nalso ok\n")
    job = import_file(project=project, path=path, skip_invalid=True)
    assert texts(project) == ["fine", "also ok"]
    assert (job.imported, job.rejected) == (2, 2)
    assert job.report == [
        {"line": 3, "reason": "empty text after cleaning"},
        {"line": 4, "reason": "text is 24 characters, over the limit of 10"},
    ]


def test_the_report_is_capped_but_counts_stay_exact(project, tmp_path, monkeypatch):
    monkeypatch.setattr(importing.rows, "REPORT_LIMIT", 3)
    job = import_file(project=project, path=write(tmp_path, "d.csv", "text\n" + "same\n" * 10))
    assert (job.imported, job.duplicates, len(job.report)) == (1, 9, 3)


def test_it_reads_an_uploaded_file_object(project, admin_user):
    upload = io.BytesIO(b"text\nfrom memory\n")
    job = import_file(project=project, fileobj=upload, filename="up.csv", user=admin_user)
    assert texts(project) == ["from memory"]
    assert (job.filename, job.created_by) == ("up.csv", admin_user)


def test_multi_line_csv_records_report_the_line_they_start_on(project, tmp_path):
    path = write(tmp_path, "m.csv", 'text\n"first\nsecond line"\nfirst second line\n')
    job = import_file(project=project, path=path)
    assert texts(project) == ["first second line"]
    assert job.report[0]["line"] == 4


@pytest.mark.parametrize("name", ["notes.xlsx", "noextension"])
def test_an_unknown_format_must_be_declared(project, tmp_path, name):
    with pytest.raises(importing.ImportRejected, match="declare one of csv, tsv, json, jsonl"):
        import_file(project=project, path=write(tmp_path, name, "text\nhi\n"))
    assert ImportJob.objects.get().status == "failed"


def test_a_minified_json_array_cut_inside_a_character_is_still_utf8(project, tmp_path):
    rows = [{"text": "好" * 5000 + str(i)} for i in range(10)]
    for pad in range(3):  # one of three paddings puts byte 65,536 inside a character
        data = json.dumps([{"text": "x" * pad}, *rows], ensure_ascii=False).encode()
        try:
            data[: importing.formats.SAMPLE_BYTES].decode("utf-8")
        except UnicodeDecodeError:
            break
    path = write(tmp_path, "min.json", data)
    assert import_file(project=project, path=path).imported == 11
    assert Item.objects.filter(text__startswith="好").count() == 10


def test_a_gbk_json_array_is_detected(project, tmp_path):
    path = write(
        tmp_path, "gbk.json", json.dumps([{"text": "尺码偏小"}], ensure_ascii=False), "gbk"
    )
    import_file(project=project, path=path)
    assert texts(project) == ["尺码偏小"]


def test_it_reads_an_excel_style_csv_with_bom_and_crlf(project, tmp_path):
    path = write(tmp_path, "excel.csv", '\ufefftext,label\r\n"two\r\nlines",positive\r\nnext,\r\n')
    job = import_file(project=project, path=path, label_column="label")
    assert texts(project) == ["two lines", "next"]
    assert job.imported == 2


@pytest.mark.postgres
def test_a_big_import_refreshes_planner_statistics_on_postgresql(project, tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    monkeypatch.setattr(importing.jobs, "ANALYZE_AFTER_ROWS", 2)
    with CaptureQueriesContext(connection) as queries:
        import_file(project=project, path=write(tmp_path, "a.csv", "text\none\ntwo\n"))
    assert any(query["sql"].startswith("ANALYZE") for query in queries)


def test_a_successful_import_queues_cold_start_seeding_after_commit(
    project, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    from annotator import tasks

    sent = []
    monkeypatch.setattr(tasks.seed_pool_task, "delay", lambda pid: sent.append(pid))
    path = tmp_path / "reviews.csv"
    path.write_text("text\nlovely\nawful\n", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        import_file(project=project, path=path)
    assert sent == [project.pk]


def test_imported_items_get_the_projects_overlap(project, tmp_path):
    project.overlap_percent, project.overlap_labelers = 50, 3
    project.save()
    path = tmp_path / "reviews.csv"
    path.write_text("text\n" + "\n".join(f"review number {i}" for i in range(10)) + "\n")
    import_file(project=project, path=path)
    counts = sorted(Item.objects.filter(project=project).values_list("required_labels", flat=True))
    assert counts == [1] * 5 + [3] * 5


def test_a_gold_import_does_not_reseed_the_queue(
    project, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    from annotator import tasks

    sent = []
    monkeypatch.setattr(tasks.seed_pool_task, "delay", lambda pid: sent.append(pid))
    path = tmp_path / "gold.csv"
    path.write_text("text,label\nlovely,positive\n", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        import_file(project=project, path=path, label_column="label", split="gold")
    assert sent == []
