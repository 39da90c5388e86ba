"""Search a project's items: text contains (any script), filters, relevance or date order.

The text is searched as a substring, so Chinese needs no word splitting. Queries of three
characters or more are answered by a trigram index (migration 0021): pg_trgm's GIN index on
PostgreSQL (`ILIKE`), an FTS5 trigram table on SQLite (`MATCH`). A trigram index cannot
answer one or two characters ("差", "好评"): those scan the project's items newest first,
which stops as soon as a page is full (docs/search.md has the measurements).

What a user may see is decided here, for every caller (the API, the pages):
managers (staff, the project's admins) search every item and everyone's labels; a labeler
searches the pool only (never gold), and the label filters read only their own labels and
the model's predictions only where the project shows suggestions to labelers.
"""

import math
import re
import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import (
    BooleanField,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Length, Lower, StrIndex

from annotator.models import Annotation, Item, ModelVersion, Prediction, Project
from annotator.permissions import can_label, can_manage
from annotator.selectors.items import items_filtered

SORTS = ("relevance", "newest", "oldest")
MAX_QUERY_CHARS = 500
INDEXED_MIN_CHARS = 3  # a trigram index holds runs of three characters
META_KEY = re.compile(r"[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*_?")  # no "__": not a lookup path


class SearchRejected(ValueError):
    """The search cannot run as asked; the message says why, to the person who asked."""


class SearchForbidden(SearchRejected):
    """A filter this user may not use (a labeler: others' labels, hidden predictions)."""


class ILike(Func):
    """PostgreSQL's `text ILIKE pattern`, the operator its trigram index answers (Django's
    icontains is `UPPER(text) LIKE UPPER(pattern)`, which the index does not)."""

    arg_joiner = " ILIKE "
    template = "%(expressions)s"
    output_field = BooleanField()


class TextRank(Func):
    """SQLite: FTS5's rank (bm25, lower is better) of the item with this id for a phrase.

    The FTS query runs once per statement, materialized and looked up by rowid: its LIMIT
    keeps SQLite from flattening it into one FTS lookup per item (rule 19 of
    https://sqlite.org/optoverview.html#flattening), which costs 5 s for 11,000 matches
    instead of 40 ms."""

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra):
        item_id, id_params = compiler.compile(self.source_expressions[0])
        phrase, phrase_params = compiler.compile(self.source_expressions[1])
        return (f"(SELECT ranked.rank FROM (SELECT rowid, rank FROM annotator_item_fts "
                f"WHERE annotator_item_fts MATCH {phrase} LIMIT -1) AS ranked "
                f"WHERE ranked.rowid = {item_id})", [*phrase_params, *id_params])


class MaxProbability(Func):
    """The largest value of a prediction's probabilities (a JSON list): its confidence."""

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, **extra,
                           template="(SELECT MAX(value) FROM json_each(%(expressions)s))")

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, **extra, template=(
            "(SELECT MAX(value::float) FROM jsonb_array_elements_text(%(expressions)s))"))


def search_text(query: str) -> str:
    """The query as it is searched: NFKC (as imported texts are cleaned, so "ｓｈｏｅｓ" and
    "很差，" find "shoes" and "很差,"), control characters dropped, each run of whitespace one
    space. SearchRejected if too long or if nothing searchable is left."""
    if len(query) > MAX_QUERY_CHARS:
        raise SearchRejected(f"the search text may be at most {MAX_QUERY_CHARS} characters "
                             f"(it has {len(query):,})")
    if not query:
        return ""
    text = unicodedata.normalize("NFKC", query)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    text = " ".join(text.split())
    if not any(unicodedata.category(ch)[0] not in "PZC" for ch in text):
        raise SearchRejected("the search text has nothing to look for: only punctuation, "
                             "spaces or control characters")
    return text


def items_search(
    *,
    project: Project,
    user,
    query: str = "",
    label: str = "",
    predicted_label: str = "",
    confidence_min: float | None = None,
    confidence_max: float | None = None,
    labeler: str = "",
    meta: dict[str, str] | None = None,
    sort: str = "relevance",
) -> QuerySet[Item]:
    """The items of `project` that `user` may see and that match, in `sort` order.

    query: a substring of the item's text, case-insensitive, any script (search_text).
    label: an annotation with this label; labeler: annotated by this username (both on the
    same annotation). A labeler's `label` reads their own annotations only, and `labeler`
    may only name themselves.
    predicted_label, confidence_min/max (0 to 1, inclusive): the active version's prediction
    (provenance.active_prediction: the version that scored the item, else the active one),
    confidence being its largest probability; labelers only where project.show_suggestions.
    meta: {field: value}, each meta field equal to the value (numbers match too).
    sort: "relevance", the best text match first (SQLite: FTS5's bm25; PostgreSQL: the
    earliest match, then the shortest text), "newest" without a query of 3+ characters;
    "newest" / "oldest": by arrival (the item id: an import batch shares one created_at),
    or, with `labeler`, by when that labeler labeled the item.

    SearchRejected for bad input, SearchForbidden (a SearchRejected) for a filter the user
    may not use, PermissionDenied for someone outside the project. A few small queries here,
    then one for the results (none per row).
    """
    manager = can_manage(user, project)
    if not manager and not can_label(user, project):
        raise PermissionDenied("not a member of this project")
    if sort not in SORTS:
        raise SearchRejected(f"sort must be one of {', '.join(SORTS)}")
    text = search_text(query)
    for name, value in (("label", label), ("predicted_label", predicted_label),
                        ("labeler", labeler)):
        _check_plain(name, value)
    predicting = bool(predicted_label) or confidence_min is not None or confidence_max is not None
    if predicting and not manager and not project.show_suggestions:
        raise SearchForbidden("this project does not show the model's predictions to labelers")
    if labeler and not manager and labeler != user.get_username():
        raise SearchForbidden("labelers search only their own labels")

    items = items_filtered(project=project, meta=_checked_meta(meta), include_gold=manager)
    if text:
        items = _containing(items, text)
    labeler_id = None
    if labeler:
        labeler_id = user.pk if not manager else (
            get_user_model().objects.filter(username=labeler).values_list("pk", flat=True)
            .first())
        if labeler_id is None:
            return items.none()
    # labels: "id IN (one subquery)" rather than a correlated EXISTS per item, which SQLite
    # runs once (5 to 8 times faster at 100k items; PostgreSQL plans both alike)
    if label or labeler_id is not None:
        annotations = Annotation.objects.all()
        if label:
            annotations = annotations.filter(label=label)
        if labeler_id is not None or not manager:  # a labeler reads their own labels only
            annotations = annotations.filter(labeler_id=labeler_id or user.pk)
        items = items.filter(pk__in=annotations.values("item_id"))
    if predicting:
        items = items.filter(Exists(_active_predictions(
            project, label=predicted_label, confidence_min=confidence_min,
            confidence_max=confidence_max)))
    return _sorted(items, text=text, sort=sort, labeler_id=labeler_id)


def _check_plain(name: str, value: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise SearchRejected(f"{name} may not hold control characters")


def _checked_meta(meta: dict[str, str] | None) -> dict[str, str]:
    for key, value in (meta or {}).items():
        if not META_KEY.fullmatch(key):
            raise SearchRejected(f"meta field {key!r}: letters, digits, - and single _ only")
        _check_plain(f"meta field {key}", value)
    return meta or {}


def _containing(items: QuerySet[Item], text: str) -> QuerySet[Item]:
    if connection.vendor == "postgresql":  # the trigram index from 3 characters, else a scan
        return items.filter(ILike(F("text"), Value(_like_pattern(text))))
    if connection.vendor == "sqlite" and len(text) >= INDEXED_MIN_CHARS:
        # the FTS query runs once (a join would let SQLite, without statistics, probe the
        # FTS table once per item of the project: 18 s for a count at 100k items)
        return items.filter(pk__in=RawSQL(
            "SELECT rowid FROM annotator_item_fts WHERE annotator_item_fts MATCH %s",
            (fts_phrase(text),)))
    return items.filter(text__icontains=text)  # 1-2 characters: a scan (module docstring)


def fts_phrase(text: str) -> str:
    """One FTS5 phrase: with the trigram tokenizer it matches where the text contains it
    (its operators, quotes included, mean nothing inside)."""
    return '"' + text.replace('"', '""') + '"'


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _active_predictions(project: Project, *, label: str, confidence_min: float | None,
                        confidence_max: float | None) -> QuerySet[Prediction]:
    """The item's prediction by the version that scored it, else by the active version (as
    provenance.active_prediction reads it), narrowed to the filters."""
    for name, bound in (("confidence_min", confidence_min), ("confidence_max", confidence_max)):
        if bound is not None and not (isinstance(bound, int | float) and math.isfinite(bound)
                                      and 0 <= bound <= 1):
            raise SearchRejected(f"{name} must be a number from 0 to 1")
    if confidence_min is not None and confidence_max is not None and (
            confidence_min > confidence_max):
        raise SearchRejected("confidence_min is above confidence_max")
    active_id = (ModelVersion.objects.filter(project=project, is_active=True)
                 .values_list("pk", flat=True).first())
    version = OuterRef("scored_version_id")
    if active_id is not None:
        version = Coalesce(version, Value(active_id))
    predictions = Prediction.objects.filter(item=OuterRef("pk"), model_version_id=version)
    if label:
        predictions = predictions.filter(label=label)
    if confidence_min is not None or confidence_max is not None:
        predictions = predictions.alias(confidence=MaxProbability("probabilities"))
        if confidence_min is not None:
            predictions = predictions.filter(confidence__gte=confidence_min)
        if confidence_max is not None:
            predictions = predictions.filter(confidence__lte=confidence_max)
    return predictions


def _sorted(items: QuerySet[Item], *, text: str, sort: str,
            labeler_id: int | None) -> QuerySet[Item]:
    if sort == "relevance" and len(text) >= INDEXED_MIN_CHARS:
        if connection.vendor == "sqlite":
            return items.alias(relevance=TextRank(F("pk"), Value(fts_phrase(text)))).order_by(
                "relevance", "-pk")  # bm25: lower is better
        if connection.vendor == "postgresql":
            # where the match starts, then shorter texts first: cheap on every match
            # (pg_trgm's similarity() took 3 times as long at 46,000 matches, docs/search.md)
            return items.alias(position=StrIndex(Lower("text"), Lower(Value(text))),
                               length=Length("text")).order_by("position", "length", "-pk")
    newest = sort != "oldest"
    if labeler_id is not None:  # by when that labeler labeled it
        items = items.alias(labeled_at=Subquery(Annotation.objects.filter(
            item=OuterRef("pk"), labeler_id=labeler_id).values("created_at")[:1]))
        return items.order_by("-labeled_at", "-pk") if newest else items.order_by(
            "labeled_at", "pk")
    return items.order_by("-pk" if newest else "pk")
