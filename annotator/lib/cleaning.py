"""Text cleaning for imported items.

clean_text(raw) -> what labelers see and models read:
  1. drop <script>/<style> blocks and HTML comments, strip tags
     (block tags such as <br> and <p> become a space),
  2. unescape HTML entities (&amp; &lt; &#39; ...), then strip again whatever the
     entities turned into markup (`&lt;script&gt;` must not come back as a tag),
  3. NFKC (full-width letters and digits become ASCII, ligatures split),
  4. drop control characters and invisible format characters
     (zero-width space, BOM, bidi marks, soft hyphen ...); a zero-width joiner
     is kept between emoji so sequences like 👩‍💻 survive,
  5. collapse every run of whitespace to one space and trim.
CJK text and emoji pass through unchanged. Text that only looks like markup stays
("a < b", "I <3 it", "size<M" without a closing ">").

Linear in the length of the text: one regex pass, whose every alternative either consumes
what it scanned or stops at the next "<" (possessive quantifiers, no backtracking), so
20,000 characters of hostile markup cost what 20,000 characters of prose cost
(bench/cleaning.py).

content_hash(clean) is the sha256 hex digest used to dedupe within a project.
"""

import hashlib
import html
import re
import unicodedata

_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)"  # a comment; an unclosed one hides the rest, as in a browser
    r"|<(script|style)\b[^<>]*+>.*?(?:</\1\s*>|\Z)"  # with its content
    r"|</?([A-Za-z][A-Za-z0-9:-]*+)[^<>]*+>",  # any tag, also <svg/onload=...>
    re.IGNORECASE | re.DOTALL,
)
_BLOCK_TAGS = frozenset(
    "br p div li ul ol tr td th table h1 h2 h3 h4 h5 h6 blockquote hr".split()
)


def _replace_markup(match: re.Match) -> str:
    name = match.group(2)
    if match.group(1) or (name and name.lower() in _BLOCK_TAGS):
        return " "
    return ""


def strip_markup(text: str) -> str:
    return _MARKUP.sub(_replace_markup, text) if "<" in text else text


# C0/C1 controls except whitespace, and invisible format characters (Unicode Cf)
# that are junk in review text. U+200D (zero-width joiner) is handled below.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x84\x86-\x9f"
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb]"
)
# A ZWJ survives only between two emoji-ish characters (symbols, skin tones, VS16).
_EMOJI = "\u2600-\u27bf\ufe0f\U0001f000-\U0001faff"
_STRAY_ZWJ = re.compile(f"(?<![{_EMOJI}])\u200d|\u200d(?![{_EMOJI}])")
_WHITESPACE = re.compile(r"\s+")


def clean_text(raw: str) -> str:
    text = strip_markup(raw)
    if "&" in text:
        text = strip_markup(html.unescape(text))
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE.sub("", text)
        text = _STRAY_ZWJ.sub("", text)
    else:
        text = _INVISIBLE.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def content_hash(clean: str) -> str:
    return hashlib.sha256(clean.encode("utf-8")).hexdigest()
