"""File readers: format and encoding detection, bounded lines, and the CSV/TSV, JSON array and
JSON lines row readers. Each reader yields (line, row dict) pairs without holding the file in
memory; anything that cannot be read raises ImportRejected ("line N: reason").
"""

import codecs
import csv
import json
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import IO

from django.conf import settings

from annotator.lib.csv_safe import restore_formula
from annotator.services.importing.errors import ImportRejected

FORMATS = ("csv", "tsv", "json", "jsonl")
EXTENSIONS = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
SAMPLE_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
LONG_HEADER_CHARS = 10_000  # a "header" longer than this is a whole file on one line

csv.field_size_limit(2**31 - 1)  # long texts get our own "too long" error, not csv's


class ByteCounter:
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
    return shorten("".join(c for c in line.strip() if c.isprintable()), 60)


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


def _decoded_lines(fileobj: IO[bytes], encoding: str, counter: ByteCounter) -> Iterator[str]:
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


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

def jsonl_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
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
    fileobj: IO[bytes], encoding: str, counter: ByteCounter
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


def read_rows(
    fileobj: IO[bytes], fmt: str, encoding: str, counter: ByteCounter, *, required: list[str]
) -> Iterator[tuple[int, dict]]:
    """(line, row) for each row of the file; `required`: columns a CSV header must have."""
    if fmt == "json":
        return _json_array_rows(fileobj, encoding, counter)
    lines = _decoded_lines(fileobj, encoding, counter)
    if fmt == "jsonl":
        return jsonl_rows(lines)
    return _csv_rows(lines, "\t" if fmt == "tsv" else ",", required)
