"""A wrongly declared encoding: the preview warns and names the right one, the readability
check counts the garbled texts as unreadable; correct files in either language stay quiet."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.models import ImportJob, VocabularyCheck
from annotator.selectors.readability import readability_blocks_schedule
from annotator.services.importing import file_preview
from tests.annotator.test_readability import run_checks_inline
from tests.trainer.test_vocabulary import CHINESE, ENGLISH

WESTERN = ["Très bien, qualité supérieure, façon élégante.", "Größe passt, überraschend gut!",
           "Me encantó, llegó rápido. ¡Excelente!", "Worth every £ — «superb»"]
MIXED = [f"{english} {chinese}" for english, chinese in zip(ENGLISH, CHINESE, strict=True)]


def csv_bytes(texts, encoding="utf-8", rows=30):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    for i in range(rows):
        writer.writerow([f"{texts[i % len(texts)]} #{i}", "positive"])
    return out.getvalue().encode(encoding)


def preview(tmp_path, body, encoding=None):
    path = tmp_path / "reviews.csv"
    path.write_bytes(body)
    return file_preview(path=path, filename="reviews.csv", encoding=encoding)


@pytest.mark.parametrize("texts", [CHINESE, MIXED], ids=["chinese", "mixed"])
def test_utf8_declared_as_latin1_is_called_garbled_and_utf8_is_named(tmp_path, texts):
    read = preview(tmp_path, csv_bytes(texts), encoding="latin-1")
    assert read.encoding == "iso8859-1"
    assert "look garbled read as Latin-1" in read.warning
    assert "The file is probably UTF-8: declare utf-8" in read.warning
    assert read.likely_encoding == "utf-8"
    assert f"{texts[0]} #0"[:40] in read.warning  # the first garbled line, read right


@pytest.mark.parametrize("texts, declared, detected", [
    (CHINESE, None, "utf-8"), (CHINESE, "utf-8", "utf-8"), (ENGLISH, "latin-1", "iso8859-1"),
    (MIXED, None, "utf-8"), (WESTERN, None, "utf-8"),
], ids=["chinese", "chinese-declared", "english-latin1", "mixed", "western"])
def test_correct_utf8_files_in_any_language_raise_no_alarm(tmp_path, texts, declared, detected):
    read = preview(tmp_path, csv_bytes(texts), encoding=declared)
    assert read.encoding == detected
    assert read.warning == "" and read.likely_encoding == ""


@pytest.mark.parametrize("declared", [None, "cp1252"])
def test_a_windows_1252_english_file_raises_no_alarm(tmp_path, declared):
    read = preview(tmp_path, csv_bytes(ENGLISH + WESTERN, "cp1252"), encoding=declared)
    assert read.encoding == "cp1252" and read.warning == ""
    assert read.rows[5][1][0].startswith("The zipper broke")


def test_latin1_declared_for_a_latin1_file_raises_no_alarm(tmp_path):
    read = preview(tmp_path, csv_bytes(WESTERN[:3], "latin-1"), encoding="latin-1")
    assert read.warning == "" and read.rows[0][1][0].startswith(WESTERN[0])


def test_latin1_declared_for_windows_1252_punctuation_names_windows_1252(tmp_path):
    """Latin-1 reads Windows-1252's dash and quotes as invisible control characters."""
    read = preview(tmp_path, csv_bytes(["Worth it — “superb”"], "cp1252"), encoding="latin-1")
    assert read.likely_encoding == "cp1252" and "Windows-1252" in read.warning


@pytest.mark.parametrize("declared", [None, "gb18030"])
def test_a_gb18030_file_declared_or_detected_raises_no_alarm(tmp_path, declared):
    read = preview(tmp_path, csv_bytes(CHINESE, "gb18030"), encoding=declared)
    assert read.encoding == "gb18030" and read.warning == ""
    assert read.rows[0][1][0].startswith(CHINESE[0])


def test_a_gb18030_file_declared_as_latin1_is_called_garbled(tmp_path):
    read = preview(tmp_path, csv_bytes(CHINESE, "gb18030"), encoding="latin-1")
    assert read.likely_encoding == "gb18030" and "GB18030" in read.warning


def test_text_garbled_in_the_file_itself_is_named_as_such(tmp_path):
    """UTF-8 once read as Windows-1252 and saved again as UTF-8: no encoding reads it right."""
    twice = [text.encode("utf-8").decode("cp1252", "replace") for text in WESTERN]
    read = preview(tmp_path, csv_bytes(twice))
    assert read.encoding == "utf-8" and read.likely_encoding == ""
    assert "saved again" in read.warning and "Très bien" in read.warning


def test_the_preview_page_shows_the_warning_and_a_link_to_read_it_right(admin_client, project):
    file = SimpleUploadedFile("zh.csv", csv_bytes(CHINESE), content_type="text/csv")
    response = admin_client.post(reverse("import_upload", args=[project.pk]),
                                 {"file": file, "encoding": "latin-1"})
    page = admin_client.get(response["Location"]).content.decode()
    assert "Wrong encoding?" in page and "declare utf-8" in page
    assert "?fmt=&amp;encoding=utf-8" in page
    again = admin_client.get(response["Location"] + "?encoding=utf-8").content.decode()
    assert "Wrong encoding?" not in again and CHINESE[0] in again


def test_an_import_of_garbled_texts_is_unreadable_on_its_report(
    admin_client, project, django_capture_on_commit_callbacks
):
    """The issue's case: 0.00% unknown tokens, and still 100% garbage."""
    file = SimpleUploadedFile("zh.csv", csv_bytes(CHINESE), content_type="text/csv")
    preview_page = admin_client.post(reverse("import_upload", args=[project.pk]),
                                     {"file": file, "encoding": "latin-1"})
    with run_checks_inline(), django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(preview_page["Location"],
                                     {"text_column": "text", "split": "pool"})
    job = ImportJob.objects.get()
    assert job.imported == 30
    check = VocabularyCheck.objects.get(import_job=job)
    assert check.unknown_share < 0.01  # what the check said before: "0.00% unknown"
    assert check.garbled_share == 1.0 and check.garbled and check.unreadable
    page = admin_client.get(response["Location"]).content.decode()
    assert "These texts look garbled" in page and "100.0%" in page
    assert readability_blocks_schedule(project)  # scheduled retraining waits
