"""Does a text look like mojibake: bytes decoded with the wrong encoding?

A UTF-8 file read as Latin-1 or Windows-1252 turns each Chinese character into three Latin
ones ("好评" -> "å¥½è¯„"); a tokenizer knows every one of them, so a vocabulary check counts
no unknown token while no model can learn anything from the text. Two tests, either enough:

- the text is UTF-8 read one byte a character: encoded back with Windows-1252 or Latin-1 it
  decodes cleanly as UTF-8 (exact, for the raw text as read from the file; a text in a real
  Western language fails it: "café" in Latin-1 is not valid UTF-8);
- it holds Latin-1 characters and charset-normalizer's mess measure finds it chaotic (for
  cleaned texts, whose invisible C1 characters are gone so the first test cannot undo them).
"""

from collections.abc import Iterable

from charset_normalizer.md import mess_ratio

MESS_LIMIT = 0.2  # real reviews in English, French or Chinese score 0.0; mojibake 0.5 to 5
MISREAD_WITH = ("cp1252", "latin-1")  # what UTF-8 is most often wrongly read as


def misread_utf8(text: str) -> tuple[str, str] | None:
    """(codec, text as UTF-8) when `text` is UTF-8 bytes that were decoded with `codec`."""
    if text.isascii():
        return None
    for codec in MISREAD_WITH:
        try:
            return codec, text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
    return None


def looks_garbled(text: str) -> bool:
    if text.isascii():
        return False
    if misread_utf8(text):
        return True
    latin = any("\u0080" <= c <= "\u00ff" for c in text)  # where stray bytes land
    return latin and mess_ratio(text, MESS_LIMIT) >= MESS_LIMIT


def garbled_count(texts: Iterable[str]) -> int:
    return sum(1 for text in texts if looks_garbled(text))
