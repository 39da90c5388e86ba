"""Streamed downloads: one response shape for every file the pages and the API hand out."""

from collections.abc import Iterable

from django.http import StreamingHttpResponse
from django.utils.text import slugify

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8",
                 "zip": "application/zip"}


def attachment(chunks: Iterable, *, fmt: str, name: str) -> StreamingHttpResponse:
    """`chunks` streamed as a file the browser saves as `<name>.<fmt>` (name slugified)."""
    response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{slugify(name) or "project"}.{fmt}"'
    return response
