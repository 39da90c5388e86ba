"""Every duplicate or rejected row of an import is kept with the row itself: listed on the
report page, page by page, and the rejected ones downloadable to fix and import again."""

import csv
import io
import json

import pytest
from django.urls import reverse

from annotator.lib.cleaning import content_hash
from annotator.models import ImportIssue, ImportJob, Item
from annotator.services import importing
from annotator.services.importing import ImportRejected, import_file, import_jobs_sweep


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def issues(job):
    return list(job.issues.values_list("line", "kind", "reason", "row"))


@pytest.fixture
def small_batches(settings):
    settings.IMPORT_BATCH_SIZE = 2


def test_every_duplicate_and_rejected_row_is_kept_with_its_row(project, tmp_path, settings):
    settings.IMPORT_MAX_TEXT_CHARS = 10
    Item.objects.create(project=project, text="known", raw_text="known",
                        content_hash=content_hash("known"))
    path = write(tmp_path, "r.csv", "text,shop\nfine,a\nfine,b\nknown,c\n<p></p>,d\n"
                                    "far too long a text,e\n")
    job = import_file(project=project, path=path, skip_invalid=True)
    assert (job.imported, job.duplicates, job.rejected) == (1, 2, 2)
    assert issues(job) == [
        (3, "duplicate", "duplicate: same clean text earlier in the file",
         {"text": "fine", "shop": "b"}),
        (4, "duplicate", "duplicate: the project already has this text",
         {"text": "known", "shop": "c"}),
        (5, "rejected", "empty text after cleaning", {"text": "<p></p>", "shop": "d"}),
        (6, "rejected", "text is 19 characters, over the limit of 10",
         {"text": "far too long a text", "shop": "e"}),
    ]
    assert len(job.report) == 4  # the command line's list, capped at REPORT_LIMIT


def test_a_json_row_is_kept_as_read_with_very_long_values_cut(project, tmp_path, monkeypatch):
    monkeypatch.setattr(importing.rows, "ISSUE_VALUE_CHARS", 20)
    row = {"text": "same", "stars": 5, "tags": ["a"], "note": "n" * 50, "shop": {"x": "y" * 50},
           "score": float("nan"), "none": None}
    path = write(tmp_path, "r.jsonl", json.dumps({"text": "same"}) + "\n" + json.dumps(row))
    job = import_file(project=project, path=path)
    [(_, _, _, kept)] = issues(job)
    assert kept == {"text": "same", "stars": 5, "tags": ["a"], "note": "n" * 20 + "…",
                    "shop": '{"x": "' + "y" * 13 + "…", "score": "NaN", "none": None}


def test_issues_are_written_with_their_batch_and_more_than_the_report_keeps(
    project, tmp_path, small_batches, monkeypatch
):
    monkeypatch.setattr(importing.rows, "REPORT_LIMIT", 3)
    written = []

    def progress(done):
        written.append(ImportIssue.objects.count())

    path = write(tmp_path, "d.csv", "text\n" + "same\n" * 10)
    job = import_file(project=project, path=path, progress=progress)
    assert written[:3] == [1, 3, 5]  # before the import is published, batch by batch
    assert (job.duplicates, len(job.report), job.issues.count()) == (9, 3, 9)


def test_a_failed_import_keeps_no_issues(project, tmp_path, small_batches):
    path = write(tmp_path, "f.csv", "text,label\na,positive\na,positive\nb,positive\n"
                                    "b,positive\nc,great\n")
    with pytest.raises(ImportRejected):
        import_file(project=project, path=path, label_column="label")
    job = ImportJob.objects.get()
    assert job.status == "failed" and "label 'great'" in job.error
    assert not ImportIssue.objects.exists()  # nothing was imported: the error is the report


def test_the_sweep_deletes_the_issues_a_killed_import_wrote(project):
    killed = ImportJob.objects.create(project=project, filename="k.csv", status="failed")
    done = ImportJob.objects.create(project=project, filename="d.csv", status="succeeded")
    for job in (killed, done):
        ImportIssue.objects.create(job=job, line=2, kind="duplicate", reason="duplicate")
    assert import_jobs_sweep()["issues"] == 1
    assert list(ImportIssue.objects.values_list("job", flat=True)) == [done.pk]


# --- the report page --------------------------------------------------------------------------


def report(client, job, **params):
    url = reverse("import_report", args=[job.project_id, job.pk])
    return client.get(url, params).content.decode()


def test_the_report_lists_all_issues_fifty_to_a_page(admin_client, project, tmp_path):
    rows = "".join(f"review {i}\nreview {i}\n" for i in range(120))
    job = import_file(project=project, path=write(tmp_path, "r.csv", "text\n" + rows))
    assert job.duplicates == 120
    first = report(admin_client, job)
    assert first.count("<td>Duplicate</td>") == 50 and "page 1 of 3" in first
    assert "<td>3</td>" in first  # line 3 duplicates line 2
    last = report(admin_client, job, page=3)
    assert last.count("<td>Duplicate</td>") == 20 and "<td>241</td>" in last


def test_the_report_filters_duplicates_or_rejected(admin_client, project, tmp_path):
    path = write(tmp_path, "r.csv", "text\nfine\nfine\n<p></p>\n")
    job = import_file(project=project, path=path, skip_invalid=True)
    page = report(admin_client, job, kind="rejected")
    assert "empty text after cleaning" in page and "same clean text" not in page
    page = report(admin_client, job, kind="duplicate")
    assert "empty text after cleaning" not in page and "same clean text" in page
    page = report(admin_client, job, kind="<script>")  # unknown: all
    assert "empty text after cleaning" in page and "same clean text" in page
    assert reverse("import_rejected_download", args=[project.pk, job.pk]) in page


# --- the rejected rows, to fix and import again -----------------------------------------------


def download(client, job) -> str:
    response = client.get(reverse("import_rejected_download", args=[job.project_id, job.pk]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="reviews-rejected.csv"'
    return b"".join(response.streaming_content).decode()


def test_the_rejected_rows_download_round_trips_through_an_import_after_a_fix(
    admin_client, project, tmp_path, settings
):
    settings.IMPORT_MAX_TEXT_CHARS = 30
    too_long = "好评 " * 12
    content = (f"text,label,note\nfine,positive,ok\n<p></p>,negative,=SUM(A1)\n"
               f"{too_long},positive,长\n")
    job = import_file(project=project, path=write(tmp_path, "reviews.csv", content),
                      label_column="label", meta_columns=["note"], skip_invalid=True)
    assert (job.imported, job.rejected) == (1, 2)
    body = download(admin_client, job)
    assert body.startswith("\ufeff")  # Excel reads the Chinese
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert rows[0] == ["text", "label", "note", "import_line", "import_reason"]
    assert rows[1] == ["<p></p>", "negative", "'=SUM(A1)", "3", "empty text after cleaning"]
    assert rows[2][1:4] == ["positive", "长", "4"]

    rows[1][0], rows[2][0] = "fixed review", "好评"  # the admin's fix, in a spreadsheet
    fixed = io.StringIO()
    csv.writer(fixed).writerows(rows)
    again = import_file(project=project, path=write(tmp_path, "fixed.csv", fixed.getvalue()),
                        label_column="label", meta_columns=["note"])
    assert (again.imported, again.rejected) == (2, 0)
    new = Item.objects.filter(import_job=again).order_by("pk")
    assert [(i.text, i.imported_label, i.meta) for i in new] == [
        ("fixed review", "negative", {"note": "=SUM(A1)"}),  # the formula neutralised and back
        ("好评", "positive", {"note": "长"}),
    ]


def test_formula_column_names_are_neutralised_in_the_header_and_restored_on_import(
    admin_client, project, tmp_path
):
    formula = '=HYPERLINK("http://evil.example","x")'
    lines = [{"text": "fine", formula: "a"}, {"text": "", formula: "=1+1", "@cmd": "b"}]
    path = write(tmp_path, "reviews.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    job = import_file(project=project, path=path, meta_columns=[formula], skip_invalid=True)
    body = download(admin_client, job).removeprefix("\ufeff")
    header, row = list(csv.reader(io.StringIO(body)))
    assert header == ["text", "'" + formula, "'@cmd", "import_line", "import_reason"]
    assert row[:3] == ["", "'=1+1", "b"]

    row[0] = "fixed review"
    fixed = io.StringIO()
    csv.writer(fixed).writerows([header, row])
    again = import_file(project=project, path=write(tmp_path, "fixed.csv", fixed.getvalue()),
                        meta_columns=[formula, "@cmd"])
    assert Item.objects.get(import_job=again).meta == {formula: "=1+1", "@cmd": "b"}


def test_rejected_json_rows_download_with_all_their_keys(admin_client, project, tmp_path):
    lines = [{"text": "fine"}, {"text": "", "stars": 1},
             {"text": " ", "turns": [{"speaker": "c", "text": ""}], "shop": {"id": 7}}]
    path = write(tmp_path, "reviews.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    job = import_file(project=project, path=path, skip_invalid=True)
    reader = csv.DictReader(io.StringIO(download(admin_client, job).removeprefix("\ufeff")))
    rows = list(reader)
    # the mapped columns first, the others by name (PostgreSQL keeps no key order)
    assert reader.fieldnames == ["text", "turns", "shop", "stars", "import_line", "import_reason"]
    assert [(r["text"], r["stars"], r["turns"], r["shop"], r["import_line"]) for r in rows] == [
        ("", "1", "", "", "2"), (" ", "", rows[1]["turns"], rows[1]["shop"], "3")]
    assert json.loads(rows[1]["turns"]) == [{"speaker": "c", "text": ""}]
    assert json.loads(rows[1]["shop"]) == {"id": 7}
