"""Bad input: each gets a clear error naming the line, and nothing is written."""

import hashlib
import json

import pytest

from annotator.models import ImportIssue, ImportJob, Item
from annotator.services import importing
from annotator.services.importing import ImportRejected, import_file


def write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def rejected(project, path, **options) -> str:
    """Import, expect a rejection; check nothing was written and the job records the error."""
    with pytest.raises(ImportRejected) as info:
        import_file(project=project, path=path, **options)
    assert not Item.with_staged.exists()  # not even hidden rows
    assert not ImportIssue.objects.exists()  # nor the duplicates met before the bad row
    job = ImportJob.objects.get()
    assert (job.status, job.imported, job.error) == ("failed", 0, str(info.value))
    assert info.value.job == job
    return str(info.value)


@pytest.fixture
def small_batches(settings):
    """Several batches are written before the bad row, so atomicity is really tested."""
    settings.IMPORT_BATCH_SIZE = 2


def test_malformed_csv_quote_names_the_line(project, tmp_path, small_batches):
    path = write(tmp_path, "bad.csv", 'text\nok 1\nok 2\nok 3\n"broken" quote\nok 4\n')
    assert rejected(project, path) == "line 5: malformed CSV: ',' expected after '\"'"


def test_csv_row_with_extra_fields_names_the_line(project, tmp_path, small_batches):
    path = write(tmp_path, "bad.csv", "text,label\na,positive\nb,positive\nc,neutral\nd,e,f\n")
    message = rejected(project, path, label_column="label")
    assert message == "line 5: malformed CSV: 3 fields where the header has 2"


def test_an_unclosed_quote_is_reported_where_its_row_starts(project, tmp_path):
    path = write(tmp_path, "bad.csv", 'text\nfine\n"never closed\nmore\nand more\n')
    assert rejected(project, path) == (
        "line 3: malformed CSV: a quoted field opened in this row is never closed "
        "(the file ends inside it)"
    )


def test_a_header_without_rows_is_rejected(project, tmp_path):
    assert rejected(project, write(tmp_path, "h.csv", "text,label\n")) == (
        "line 2: the file has a header but no rows"
    )


def test_a_whole_file_on_one_line_is_called_that_not_a_header_without_rows(project, tmp_path):
    """5 MB with no line break: its one line is no header, and the message says what is true."""
    body = "text," + ",".join(f"review {i}" for i in range(500_000))
    message = rejected(project, write(tmp_path, "one.csv", body))
    assert message.startswith(f"line 1: the file is one line of {len(body):,} bytes with "
                              "no line break and has no rows")
    assert "header but no rows" not in message


@pytest.mark.parametrize("name", ["big.jsonl", "big.csv"])
def test_a_line_longer_than_a_row_may_be_is_refused_by_size_unread(project, tmp_path, name,
                                                                   small_batches):
    """One 12 MB line: refused by its size, the rows before it not imported, and the reader
    never holds the line (tracemalloc's peak stays far below it)."""
    import tracemalloc

    huge = "x" * 12_000_000
    if name.endswith(".jsonl"):
        body = "\n".join([json.dumps({"text": "fine"}), json.dumps({"text": huge}),
                          json.dumps({"text": "after"})]) + "\n"
    else:
        body = f"text\nfine\n{huge}\nafter\n"
    path = write(tmp_path, name, body)
    tracemalloc.start()
    try:
        message = rejected(project, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.startswith("line 2: the line is 12,0") or message.startswith("line 3: the line")
    assert "longer than a row may be" in message and "it was not read" in message
    assert peak < 4_000_000, f"peak {peak:,} bytes while reading a 12 MB line"


def test_a_json_array_object_longer_than_a_row_may_be_is_refused_by_size(project, tmp_path):
    body = json.dumps([{"text": "fine"}, {"text": "z" * 9_000_000}])
    message = rejected(project, write(tmp_path, "big.json", body))
    assert "an object longer than" in message and "it was not read" in message


def test_the_preview_of_a_huge_line_reads_a_bounded_prefix(tmp_path):
    import tracemalloc

    path = write(tmp_path, "big.jsonl", json.dumps({"text": "ok"}) + "\n"
                 + json.dumps({"text": "y" * 12_000_000}) + "\n")
    tracemalloc.start()
    try:
        with pytest.raises(ImportRejected, match="longer than a row may be"):
            importing.file_preview(path=path, filename="big.jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"peak {peak:,} bytes while previewing a 12 MB line"



@pytest.mark.parametrize(("name", "content"), [("e.json", "[ ]"), ("e.jsonl", "\n\n")])
def test_a_json_file_without_objects_is_rejected(project, tmp_path, name, content):
    assert rejected(project, write(tmp_path, name, content)).endswith("the file has no rows")


def test_a_missing_column_error_stays_short_for_a_huge_header(project, tmp_path):
    header = ",".join(f"column_{i}_" + "x" * 40 for i in range(100))
    message = rejected(project, write(tmp_path, "wide.csv", header + "\n" + "1," * 99 + "1\n"))
    assert message.startswith("line 1: no column 'text' in the header (it has 100 columns: ")
    assert message.endswith("and 97 more)")
    assert len(message) < 300


def test_a_binary_file_is_rejected(project, tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"
    message = rejected(project, write(tmp_path, "photo.csv", png))
    assert message == "line 3: binary data (NUL byte): expected a UTF-8, GB18030 or Windows-1252 text file"


def test_a_nul_byte_after_the_sniffed_sample_is_rejected(project, tmp_path, small_batches):
    rows = "".join(f"row {i}\n" for i in range(20_000))
    path = write(tmp_path, "late.csv", ("text\n" + rows).encode() + b"bad\x00row\n")
    assert rejected(project, path) == "line 20002: binary data (NUL byte) in a text file"


def test_bytes_in_no_known_encoding_are_rejected(project, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"text\nnice\nbad \x81\n")  # undefined in Windows-1252, cut in GB18030
    message = rejected(project, path)
    assert message == ("line 3: bytes are neither UTF-8 nor GB18030 nor Windows-1252 (byte 0x81);"
                       " declare the encoding")


def test_a_windows_1252_file_is_not_mistaken_for_gb18030(project, tmp_path):
    path = write(tmp_path, "fr.csv", "text\nTrès économique\ncafé au lait\n", "cp1252")
    assert import_file(project=project, path=path).imported == 2
    assert sorted(Item.objects.values_list("text", flat=True)) == ["Très économique",
                                                                   "café au lait"]


def test_a_file_two_encodings_read_equally_well_is_refused_with_both_readings(
    project, tmp_path
):
    path = write(tmp_path, "short.csv", "text\n好评\n", "gbk")
    message = rejected(project, path)
    assert message.startswith("line 2: cannot tell the encoding of this file:")
    assert "GB18030 reads '好评'" in message and "Windows-1252 reads 'ºÃÆÀ'" in message
    assert "Declare the right one (e.g. gb18030 or cp1252)" in message
    assert not Item.objects.exists()
    assert import_file(project=project, path=path, encoding="gb18030").imported == 1


def test_a_wrong_declared_encoding_names_the_line(project, tmp_path, small_batches):
    path = write(tmp_path, "gbk.csv", "text\nok 1\nok 2\nok 3\n质量很好\n", "gbk")
    message = rejected(project, path, encoding="utf-8")
    assert message.startswith("line 5: cannot decode bytes as utf-8 (invalid")
    assert "declare the right encoding" in message


def test_wrong_encoding_later_in_the_file_names_the_line(project, tmp_path, small_batches):
    head = "text\n" + "".join(f"好评 {i}\n" for i in range(10_000))
    path = write(tmp_path, "mixed.csv", head.encode() + "差评\n".encode("gbk"))
    assert rejected(project, path).startswith("line 10002: cannot decode bytes as utf-8")


def test_a_missing_text_column_is_rejected(project, tmp_path):
    path = write(tmp_path, "nocol.csv", "body,label\nnice,positive\n")
    assert (
        rejected(project, path)
        == "line 1: no column 'text' in the header (it has 2 columns: 'body', 'label')"
    )


def test_a_missing_mapped_column_is_rejected(project, tmp_path):
    path = write(tmp_path, "nocol.csv", "text\nnice\n")
    assert rejected(project, path, label_column="label") == (
        "line 1: no column 'label' in the header (it has 1 column: 'text')"
    )


def test_a_jsonl_row_without_text_names_the_line(project, tmp_path, small_batches):
    lines = [{"text": "a"}, {"text": "b"}, {"text": "c"}, {"body": "d"}]
    path = write(tmp_path, "rows.jsonl", "\n".join(json.dumps(row) for row in lines))
    assert rejected(project, path) == "line 4: no 'text' field"


def test_empty_text_after_cleaning_names_the_line(project, tmp_path, small_batches):
    path = write(tmp_path, "e.csv", "text\na\nb\nc\n<p>&nbsp;</p>\n")
    assert rejected(project, path) == (
        "line 5: empty text after cleaning (fix the row, or choose to skip invalid rows)"
    )


def test_a_one_megabyte_text_names_the_line(project, tmp_path, small_batches):
    path = write(tmp_path, "big.csv", "text\na\nb\nc\n" + "x" * 1_000_000 + "\n")
    assert rejected(project, path) == (
        "line 5: text is 1,000,000 characters, over the limit of 20,000 "
        "(fix the row, or choose to skip invalid rows)"
    )


def test_a_label_outside_the_label_set_names_the_line(project, tmp_path, small_batches):
    path = write(tmp_path, "l.csv", "text,label\na,positive\nb,negative\nc,neutral\nd,great\n")
    assert rejected(project, path, label_column="label") == (
        "line 5: label 'great' is not in the project's label set (negative, neutral, positive)"
    )


def test_a_label_outside_the_label_set_fails_even_with_skip_invalid(project, tmp_path):
    path = write(tmp_path, "l.csv", "text,label\na,positive\nb,Positive\n")
    message = rejected(project, path, label_column="label", skip_invalid=True)
    assert message.startswith("line 3: label 'Positive' is not in the project's label set")


def test_an_unknown_kind_names_the_line(project, tmp_path):
    path = write(tmp_path, "k.csv", "text,kind\na,review\nb,tweet\n")
    assert rejected(project, path, kind_column="kind") == (
        "line 3: kind 'tweet' is not one of review, dialogue, query, ad, social"
    )


def test_invalid_jsonl_names_the_line(project, tmp_path):
    path = write(tmp_path, "j.jsonl", '{"text": "a"}\n{"text": "b",}\n')
    assert (
        rejected(project, path)
        == "line 2: invalid JSON: Expecting property name enclosed in double quotes (column 14)"
    )


def test_a_jsonl_line_that_is_not_an_object_names_the_line(project, tmp_path):
    path = write(tmp_path, "j.jsonl", '{"text": "a"}\n["b"]\n')
    assert rejected(project, path) == "line 2: expected one JSON object per line"


def test_invalid_json_array_names_the_line(project, tmp_path, monkeypatch, small_batches):
    monkeypatch.setattr(importing.formats, "CHUNK_BYTES", 5)
    body = '[\n  {"text": "a"},\n  {"text": "b"},\n  {"text": "c"},\n  {"text": "d" "e"}\n]'
    path = write(tmp_path, "j.json", body)
    assert rejected(project, path) == "line 5: invalid JSON: Expecting ',' delimiter"


def test_a_json_file_that_is_not_an_array_is_rejected(project, tmp_path):
    path = write(tmp_path, "j.json", '{"text": "a"}')
    assert (
        rejected(project, path)
        == "line 1: a .json file must hold an array of objects ([{...}, ...])"
    )


def test_an_unclosed_json_array_is_rejected(project, tmp_path):
    path = write(tmp_path, "j.json", '[{"text": "a"},\n{"text": "b"}\n')
    assert rejected(project, path) == "line 3: invalid JSON: expected ',' or ']' after an object"


def test_malformed_dialogue_turns_name_the_line(project, tmp_path):
    path = write(
        tmp_path, "d.jsonl", '{"turns": [{"speaker": "agent", "text": "hi"}]}\n{"turns": ["hi"]}\n'
    )
    message = rejected(project, path)
    assert message.startswith("line 2: 'turns' must be a list of turns like")


def test_an_empty_file_is_rejected(project, tmp_path):
    assert rejected(project, write(tmp_path, "empty.csv", "")) == "line 1: the file is empty"


def test_utf16_is_rejected_with_advice(project, tmp_path):
    path = write(tmp_path, "u16.csv", "text\nhi\n", "utf-16")
    assert (
        rejected(project, path) == "line 1: UTF-16 files are not supported; save the file as UTF-8"
    )


def test_a_text_added_by_a_concurrent_import_fails_cleanly(project, tmp_path, monkeypatch):
    """The project was empty at the start, so the importer skips the lookup; the unique
    constraint still catches a text another import committed meanwhile."""
    path = write(tmp_path, "r.csv", "text\nfirst\nsecond\n")
    original = importing.writer.BulkWriter.write

    def write_after_a_rival(writer, prepared):
        digest = hashlib.sha256(b"second").hexdigest()
        Item.objects.create(project=project, raw_text="second", text="second",
                            content_hash=digest)
        original(writer, prepared)

    monkeypatch.setattr(importing.writer.BulkWriter, "write", write_after_a_rival)
    with pytest.raises(ImportRejected, match="line 2: another import added some of these texts"):
        import_file(project=project, path=path)
    assert Item.objects.count() == 0
