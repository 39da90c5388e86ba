"""Text cleaning for imported items.

clean_text(raw) -> what labelers see and models read:
  1. drop <script>/<style> blocks and HTML comments, strip tags
     (block tags such as <br> and <p> become a space),
  2. unescape HTML entities (&amp; &lt; &#39; ...),
  3. NFKC (full-width letters and digits become ASCII, ligatures split),
  4. drop control characters and invisible format characters
     (zero-width space, BOM, bidi marks, soft hyphen ...); a zero-width joiner
     is kept between emoji so sequences like 👩‍💻 survive,
  5. collapse every run of whitespace to one space and trim.
CJK text and emoji pass through unchanged.

content_hash(clean) is the sha256 hex digest used to dedupe within a project.
"""

import hashlib
import html
import re
import unicodedata

_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_BLOCK_TAG = re.compile(
    r"</?(?:br|p|div|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|hr)\b[^<>]*>", re.IGNORECASE
)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")

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
    text = raw
    if "<" in text:
        text = _SCRIPT_STYLE.sub(" ", text)
        text = _COMMENT.sub("", text)
        text = _BLOCK_TAG.sub(" ", text)
        text = _TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE.sub("", text)
        text = _STRAY_ZWJ.sub("", text)
    else:
        text = _INVISIBLE.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def content_hash(clean: str) -> str:
    return hashlib.sha256(clean.encode("utf-8")).hexdigest()
