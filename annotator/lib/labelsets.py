"""A project's label set: the one place that says what a valid one is.

A label set is an ordered list of {"name": ..., "key": ..., "color": ...}, each label with an
optional "description" (a short sentence the zero-shot suggestions compare items with,
trainer/zero_shot.py; kept only when written). Writers (the project pages, the API, the
Django admin, Project.clean) call `validate_label_set`; readers go through
`Project.label_set`, which uses `stored_label_set` so that rows saved before the rules existed
(plain strings, labels without key or colour) still show.

Names are normalised (`label_name_normalized`: NFKC, invisible format characters and
surrounding whitespace dropped), so "pos" and "pos" + a zero-width space, or "ｐｏｓｉｔｉｖｅ"
and "positive", are one name, and two labels that normalise alike are refused. Stored names
are read as they are: the next save of the label set normalises them as a rename.
"""

import re
import string
import unicodedata

from django.core.exceptions import ValidationError

MIN_LABELS = 2
MAX_LABELS = 20
NAME_MAX_LENGTH = 100  # Annotation.label, Item.gold_label / imported_label / final_label
FIELDS = ("name", "key", "color", "description")
# A short sentence: the encoder reads its first 64 tokens (trainer.zero_shot); pages show it whole.
DESCRIPTION_MAX_LENGTH = 200

# Taken by the labeling page (annotator/static/annotator/label.js, which lowercases keys):
# s skips, u goes back, w shows why the model suggests its label, ? shows the shortcuts.
RESERVED_KEYS = frozenset("suw?")
DEFAULT_KEYS = [*"1234567890", *(c for c in string.ascii_lowercase if c not in RESERVED_KEYS)]
PALETTE = [  # Tableau 20: distinct on screen, in this order
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip
COLOR = re.compile(r"^#[0-9a-f]{6}$")
EXAMPLE = '{"name": "positive", "key": "3", "color": "#2ca02c"}'


ZWJ = "\u200d"  # zero-width joiner: kept inside an emoji sequence (👩‍💻), dropped elsewhere


def label_name_normalized(name: str) -> str:
    """The name as it is kept: NFKC (full-width letters become ASCII), invisible format
    characters (Unicode Cf: zero-width space, BOM, bidi marks, soft hyphen) dropped,
    surrounding whitespace stripped."""
    name = unicodedata.normalize("NFKC", name)
    kept = [c for i, c in enumerate(name) if unicodedata.category(c) != "Cf" or (
        c == ZWJ and 0 < i < len(name) - 1 and _is_emoji(name[i - 1]) and _is_emoji(name[i + 1]))]
    return "".join(kept).strip()


def _is_emoji(c: str) -> bool:
    return unicodedata.category(c) in ("So", "Sk") or c == "\ufe0f"


def _has_control_characters(text: str) -> bool:
    # Cc: tabs, newlines, NUL...; Cs: lone surrogates (PostgreSQL refuses them); Zl/Zp: breaks
    return any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text)


def _check_name(position: int, raw) -> str:
    if raw is None:
        raise ValidationError(f"Label {position} has no name.")
    if not isinstance(raw, str):
        raise ValidationError(f"Label {position}: the name must be text.")
    name = label_name_normalized(raw)
    if not name:
        raise ValidationError(f"Label {position}: the name is empty"
                              + (" (it has only invisible characters)." if raw.strip() else "."))
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            f"Label {position}: the name is {len(name)} characters long; "
            f"at most {NAME_MAX_LENGTH} fit."
        )
    if _has_control_characters(name):
        raise ValidationError(f"Label {position} ({name!r}): the name has control characters.")
    return name


def _check_key(name: str, raw) -> str:
    if raw is None or raw == "":
        return ""
    key = raw.strip().lower() if isinstance(raw, str) else ""
    if len(key) != 1 or not key.isprintable():
        raise ValidationError(
            f"Label {name!r}: the shortcut key must be one visible character, not {raw!r}."
        )
    if key in RESERVED_KEYS:
        raise ValidationError(
            f"Label {name!r}: the key {key!r} is taken by the labeling page "
            f"(s skips, u goes back, ? shows the shortcuts)."
        )
    return key


def _check_color(name: str, raw) -> str:
    if raw is None or raw == "":
        return ""
    color = raw.strip().lower() if isinstance(raw, str) else ""
    if not COLOR.match(color):
        raise ValidationError(
            f"Label {name!r}: the colour must look like #1f77b4 (# and six hex digits), "
            f"not {raw!r}."
        )
    return color


def _check_description(name: str, raw) -> str:
    """The description as kept: whitespace runs (line breaks too) become one space, ends
    trimmed; "" when there is none."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValidationError(f"Label {name!r}: the description must be text.")
    description = " ".join(raw.split())
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ValidationError(
            f"Label {name!r}: the description is {len(description)} characters long; "
            f"at most {DESCRIPTION_MAX_LENGTH} fit (one short sentence).")
    if _has_control_characters(description):
        raise ValidationError(f"Label {name!r}: the description has control characters.")
    return description


def validate_label_set(labels) -> list[dict]:
    """The label set normalised (names stripped, keys lowercased, missing keys and colours
    filled in, descriptions trimmed and kept only when written); ValidationError with a
    message a person can act on if it is not valid."""
    if not isinstance(labels, list | tuple):
        raise ValidationError(f"The label set must be a list of labels like [{EXAMPLE}, ...].")
    if not MIN_LABELS <= len(labels) <= MAX_LABELS:
        raise ValidationError(
            f"A project needs {MIN_LABELS} to {MAX_LABELS} labels; this set has {len(labels)}."
        )
    checked = []
    for position, label in enumerate(labels, start=1):
        if not isinstance(label, dict):
            raise ValidationError(
                f"Label {position} must be an object like {EXAMPLE}, not {label!r}."
            )
        unknown = sorted(set(label) - set(FIELDS), key=str)
        if unknown:
            raise ValidationError(
                f"Label {position}: unknown field(s) {', '.join(map(repr, unknown))}; "
                f"a label has {', '.join(FIELDS)}."
            )
        name = _check_name(position, label.get("name"))
        checked.append({
            "name": name,
            "key": _check_key(name, label.get("key")),
            "color": _check_color(name, label.get("color")),
        })
        description = _check_description(name, label.get("description"))
        if description:
            checked[-1]["description"] = description

    _refuse_doubles([label["name"].casefold() for label in checked],
                    [label.get("name") for label in labels], "name")
    keys = [label["key"] for label in checked if label["key"]]
    _refuse_doubles(keys, keys, "shortcut key")

    _fill_in(checked)
    return checked


def _refuse_doubles(compared: list[str], given: list, what: str) -> None:
    """ValidationError naming the labels, as they were given, whose `compared` values meet."""
    for value in dict.fromkeys(compared):
        same = [given[i] for i, other in enumerate(compared) if other == value]
        if len(same) > 1:
            how = (" (names are compared ignoring case, full-width forms, invisible characters "
                   "and surrounding spaces)") if what == "name" else ""
            raise ValidationError(
                f"Two labels have the same {what}: {', '.join(map(repr, same))}{how}.")


def _fill_in(labels: list[dict]) -> None:
    """Give labels without a key or colour the first ones no other label has."""
    keys, colors = {label["key"] for label in labels}, {label["color"] for label in labels}
    free_keys = iter([key for key in DEFAULT_KEYS if key not in keys])
    free_colors = iter([color for color in PALETTE if color not in colors])
    for index, label in enumerate(labels):
        label["key"] = label["key"] or next(free_keys, "")
        label["color"] = label["color"] or next(free_colors, PALETTE[index % len(PALETTE)])


def stored_label_set(labels) -> list[dict]:
    """Whatever a row holds, as labels with name, key and colour (and the description where
    one was written); never raises.

    Rows written before validation existed may hold ["joy", "anger"] or labels without a
    key or colour: pages must still show them, so this keeps every named label and fills
    in what is missing (an unusable key or colour is replaced).
    """
    if not isinstance(labels, list | tuple):
        return []
    kept = []
    for label in labels:
        if isinstance(label, str):
            label = {"name": label}
        name = label.get("name") if isinstance(label, dict) else None
        if not isinstance(name, str) or not name.strip():
            continue
        key, color = label.get("key"), label.get("color")
        kept.append({
            "name": name,
            "key": key.strip().lower() if isinstance(key, str) and len(key.strip()) == 1 else "",
            "color": color.lower() if isinstance(color, str) and COLOR.match(color.lower()) else "",
        })
        description = label.get("description") if isinstance(label, dict) else None
        if isinstance(description, str) and description.strip():
            kept[-1]["description"] = " ".join(description.split())
    _fill_in(kept)
    return kept
