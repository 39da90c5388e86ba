"""Search on items (selectors/search.py): text in any script, filters, order, who sees what,
bad input, and the index on each database (migration 0021). Runs on SQLite and PostgreSQL."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from annotator.models import Annotation, Item, Membership, ModelVersion, Prediction
from annotator.selectors.search import (
    MAX_QUERY_CHARS,
    SearchForbidden,
    SearchRejected,
    items_search,
    search_text,
)
from tests.annotator.labeling_factories import make_item, make_items

TEXTS = {
    "short_en": "Great shoes",
    "long_en": "These are the shoes I bought last summer for a wedding, and they still look new",
    "bad_en": "Bad quality, the sole came off after a week",
    "zh_bad": "鞋子质量很差，穿了一周就坏了",  # stored NFKC-cleaned: "很差,穿"
    "zh_good": "好评！物流很快，鞋子很舒服",
    "mixed": "iPhone 15 手机壳很好看 nice case",
    "ru": "Отличные ботинки, рекомендую",
    "percent": "100% cotton_blend socks",
}


def _item(project, key, **fields):
    from annotator.lib.cleaning import clean_text

    return make_item(project, clean_text(TEXTS[key]), **fields)


@pytest.fixture
def items(project):
    return {key: _item(project, key) for key in TEXTS}


@pytest.fixture
def staff(admin_user):
    return admin_user


@pytest.fixture
def project_admin(project):
    user = get_user_model().objects.create_user("ada")
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def colleague(project):
    user = get_user_model().objects.create_user("carl")
    Membership.objects.create(project=project, user=user)
    return user


def _found(project, user, **search) -> list[str]:
    return [item.text for item in items_search(project=project, user=user, **search)]


def _keys(project, user, items, **search) -> set[str]:
    by_pk = {item.pk: key for key, item in items.items()}
    return {by_pk[item.pk] for item in items_search(project=project, user=user, **search)}


# --- text ------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("shoes", {"short_en", "long_en"}),
    ("SHOES", {"short_en", "long_en"}),  # case-insensitive
    ("ｓｈｏｅｓ", {"short_en", "long_en"}),  # full-width letters, as imports clean them
    ("e shoes I b", {"long_en"}),  # spaces inside, across words
    ("质量很", {"zh_bad"}),  # 3+ Chinese characters: the index
    ("很差，穿", {"zh_bad"}),  # a full-width comma finds the cleaned text's ","
    ("鞋子", {"zh_bad", "zh_good"}),  # 2 characters: the scan
    ("好评", {"zh_good"}),
    ("差", {"zh_bad"}),
    ("手机壳很好看 nice", {"mixed"}),  # mixed scripts
    ("iphone 15", {"mixed"}),
    ("ботинки", {"ru"}),
    ("100%", {"percent"}),  # LIKE wildcards are literal
    ("n_b", {"percent"}),
    ("x%y", set()),
])
def test_text_is_found_as_a_substring_in_any_script(project, staff, items, query, expected):
    assert _keys(project, staff, items, query=query) == expected


@pytest.mark.parametrize("query", ['"shoes"', "shoes OR bad", "NEAR(shoes", "shoe*", "-shoes",
                                   "sole: came", "a'b", "^sh"])
def test_search_syntax_is_plain_text(project, staff, items, query):
    """FTS5 and LIKE operators mean nothing: the query is a substring, found or not."""
    expected = {key for key, text in TEXTS.items() if query.lower() in text.lower()}
    assert _keys(project, staff, items, query=query) == expected


def test_an_empty_query_filters_nothing(project, staff, items):
    assert len(_found(project, staff)) == len(TEXTS)


def test_staged_import_rows_never_appear(project, staff, items):
    staged = Item.with_staged.create(project=project, text="staged shoes", raw_text="x",
                                     content_hash="staged", staged=True)
    assert "staged shoes" not in _found(project, staff, query="shoes")
    assert "staged shoes" not in _found(project, staff, query="sh")
    Item.with_staged.filter(pk=staged.pk).update(staged=False)  # the import is published
    assert "staged shoes" in _found(project, staff, query="shoes")


def test_the_index_follows_changed_and_deleted_texts(project, staff, items):
    item = items["short_en"]
    Item.objects.filter(pk=item.pk).update(text="Great sandals")
    assert _keys(project, staff, items, query="shoes") == {"long_en"}
    assert _keys(project, staff, items, query="sandals") == {"short_en"}
    Item.objects.filter(pk=items["long_en"].pk).delete()
    assert _found(project, staff, query="shoes") == []


def test_another_projects_items_never_appear(project, other_project, staff, items):
    make_item(other_project, "Other shoes")
    assert "Other shoes" not in _found(project, staff, query="shoes")


# --- order -----------------------------------------------------------------------------


def test_relevance_puts_the_closest_match_first(project, staff, items):
    assert _found(project, staff, query="shoes")[0] == items["short_en"].text


def test_date_orders_go_by_arrival_and_relevance_without_a_query_is_newest(project, staff,
                                                                          items):
    newest = _found(project, staff, sort="newest")
    assert newest == [item.text for item in sorted(items.values(), key=lambda i: -i.pk)]
    assert _found(project, staff, sort="oldest") == newest[::-1]
    assert _found(project, staff) == newest
    assert _found(project, staff, query="鞋子") == [items["zh_good"].text, items["zh_bad"].text]


def test_with_a_labeler_the_date_orders_go_by_when_they_labeled(project, labeler, items):
    for key in ("zh_good", "short_en", "ru"):  # labeled in this order, not the items'
        Annotation.objects.create(item=items[key], labeler=labeler, label="positive")
    assert _found(project, labeler, labeler="lena") == [items["ru"].text, items["short_en"].text,
                                                        items["zh_good"].text]
    assert _found(project, labeler, labeler="lena", sort="oldest") == [
        items["zh_good"].text, items["short_en"].text, items["ru"].text]


# --- who sees what ---------------------------------------------------------------------


@pytest.fixture
def gold(project):
    return make_item(project, "Gold shoes, held out", split=Item.Split.GOLD,
                     gold_label="positive")


def test_managers_search_gold_items_and_labelers_never(project, staff, project_admin,
                                                       labeler, items, gold):
    assert gold.text in _found(project, staff, query="shoes")
    assert gold.text in _found(project, project_admin, query="gold")
    assert gold.text not in _found(project, labeler, query="shoes")
    assert _found(project, labeler, query="Gold") == []
    Annotation.objects.create(item=gold, labeler=labeler, label="positive")  # labeled anyway
    assert _found(project, labeler, label="positive") == []
    assert _found(project, labeler, labeler="lena") == []


@pytest.fixture
def labels(items, labeler, colleague):
    """lena: short_en negative; carl: short_en positive, zh_bad negative."""
    Annotation.objects.create(item=items["short_en"], labeler=labeler, label="negative")
    Annotation.objects.create(item=items["short_en"], labeler=colleague, label="positive")
    Annotation.objects.create(item=items["zh_bad"], labeler=colleague, label="negative")


def test_a_labelers_label_filter_reads_only_their_own_labels(project, labeler, items, labels):
    assert _keys(project, labeler, items, label="negative") == {"short_en"}
    assert _keys(project, labeler, items, label="positive") == set()  # carl's label: unseen
    assert _keys(project, labeler, items, labeler="lena") == {"short_en"}
    assert _keys(project, labeler, items, labeler="lena", label="positive") == set()


def test_a_labeler_may_not_filter_by_another_labeler(project, labeler, items, labels):
    for name in ("carl", "boss", "nobody"):
        with pytest.raises(SearchForbidden, match="only their own labels"):
            items_search(project=project, user=labeler, labeler=name)


def test_managers_filter_by_anyones_labels(project, project_admin, items, labels):
    assert _keys(project, project_admin, items, label="negative") == {"short_en", "zh_bad"}
    assert _keys(project, project_admin, items, labeler="carl") == {"short_en", "zh_bad"}
    # label and labeler on the same annotation
    assert _keys(project, project_admin, items, labeler="carl", label="negative") == {"zh_bad"}
    assert _keys(project, project_admin, items, labeler="lena", label="positive") == set()
    assert _found(project, project_admin, labeler="nobody") == []


def test_someone_outside_the_project_is_refused(project, outsider, items):
    with pytest.raises(PermissionDenied):
        items_search(project=project, user=outsider)


# --- predictions -----------------------------------------------------------------------


@pytest.fixture
def predictions(project, items):
    """v1 scored short_en and zh_bad; v2 (active) predicts zh_good and, for an item scored
    by no version, ru. The prediction an item shows: its scored version's, else the active."""
    names = ["negative", "neutral", "positive"]
    old = ModelVersion.objects.create(project=project, version=1, artifact_path="v1",
                                      label_names=names, base_model="tiny")
    active = ModelVersion.objects.create(project=project, version=2, artifact_path="v2",
                                         label_names=names, base_model="tiny", is_active=True)
    for key, version, label, top in [("short_en", old, "positive", 0.9),
                                     ("zh_bad", old, "negative", 0.55),
                                     ("zh_bad", active, "positive", 0.99),  # not its scorer
                                     ("zh_good", active, "positive", 0.7),
                                     ("ru", active, "negative", 0.4)]:
        rest = (1 - top) / 2
        Prediction.objects.create(item=items[key], model_version=version, label=label,
                                  probabilities=[top, rest, rest], uncertainty=1 - top)
    Item.objects.filter(pk__in=[items["short_en"].pk, items["zh_bad"].pk]).update(
        scored_version=old)
    Item.objects.filter(pk=items["zh_good"].pk).update(scored_version=active)


def test_predicted_label_and_confidence_read_the_items_active_prediction(
        project, staff, items, predictions):
    assert _keys(project, staff, items, predicted_label="positive") == {"short_en", "zh_good"}
    assert _keys(project, staff, items, predicted_label="negative") == {"zh_bad", "ru"}
    assert _keys(project, staff, items, confidence_min=0.6) == {"short_en", "zh_good"}
    assert _keys(project, staff, items, confidence_max=0.55) == {"zh_bad", "ru"}  # inclusive
    assert _keys(project, staff, items, confidence_min=0.5, confidence_max=0.8) == {
        "zh_bad", "zh_good"}
    assert _keys(project, staff, items, predicted_label="positive", query="鞋子") == {"zh_good"}


def test_labelers_filter_by_predictions_only_where_the_project_shows_suggestions(
        project, labeler, items, predictions):
    for search in ({"predicted_label": "positive"}, {"confidence_min": 0.1},
                   {"confidence_max": 0.9}):
        with pytest.raises(SearchForbidden, match="does not show"):
            items_search(project=project, user=labeler, **search)
    project.show_suggestions = True
    project.save()
    assert _keys(project, labeler, items, predicted_label="positive") == {"short_en", "zh_good"}


def test_searching_costs_the_same_queries_for_many_items(
        project, staff, items, predictions, labels, django_assert_num_queries):
    """No query per row: the checks up front (membership, labeler, active version), one for
    the results."""
    def run():
        return list(items_search(project=project, user=staff, query="质量很", label="negative",
                                 labeler="carl", predicted_label="negative",
                                 confidence_min=0.1, meta={"store": "tmall"}))

    Item.objects.update(meta={"store": "tmall"})
    with django_assert_num_queries(3):
        few = run()
    for n in range(30):
        item = make_item(project, f"质量很差 number {n}", meta={"store": "tmall"},
                         scored_version=ModelVersion.objects.get(version=1))
        Annotation.objects.create(item=item, labeler=get_user_model().objects.get(
            username="carl"), label="negative")
        Prediction.objects.create(item=item, model_version_id=item.scored_version_id,
                                  label="negative", probabilities=[0.8, 0.1, 0.1],
                                  uncertainty=0.2)
    with django_assert_num_queries(3):
        many = run()
    assert len(few) == 1 and len(many) == 31


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(("search", "message"), [
    ({"query": "x" * (MAX_QUERY_CHARS + 1)}, "at most 500 characters"),
    ({"query": "!!!"}, "nothing to look for"),
    ({"query": "？？。"}, "nothing to look for"),  # CJK punctuation
    ({"query": "   "}, "nothing to look for"),
    ({"query": "\x00\x01\n"}, "nothing to look for"),
    ({"sort": "best"}, "sort must be one of relevance, newest, oldest"),
    ({"confidence_min": 1.5}, "confidence_min must be a number from 0 to 1"),
    ({"confidence_max": float("nan")}, "confidence_max must be a number from 0 to 1"),
    ({"confidence_min": 0.8, "confidence_max": 0.2}, "above confidence_max"),
    ({"meta": {"a__contains": "x"}}, "letters, digits"),
    ({"label": "pos\x00itive"}, "label may not hold control characters"),
    ({"meta": {"store": "t\x00mall"}}, "control characters"),
])
def test_bad_input_is_rejected_with_a_clear_message(project, staff, search, message):
    with pytest.raises(SearchRejected, match=message.replace("(", r"\(")):
        items_search(project=project, user=staff, **search)


def test_the_longest_query_and_emoji_are_fine(project, staff, items):
    assert _found(project, staff, query="x" * MAX_QUERY_CHARS) == []
    make_item(project, "love it 👍👍")
    assert _found(project, staff, query="👍") == ["love it 👍👍"]


def test_the_query_is_searched_as_the_texts_were_cleaned():
    assert search_text("  ｓｈｏｅｓ\t\x00 很差，穿  ") == "shoes 很差,穿"
    assert search_text("") == ""


# --- the index (migration 0021) --------------------------------------------------------


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_queries_of_three_characters_or_more_use_the_index(project, staff, items):
    make_items(project, 3000, prefix="filler review, fine shoes")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # new rows wait in the GIN index's pending list (autovacuum merges it), which
            # the planner counts against the index
            cursor.execute("SELECT gin_clean_pending_list('item_text_trgm_idx')")
            cursor.execute("ANALYZE annotator_item")
    for query in ("质量很", "sole came"):
        for sort in ("relevance", "newest"):
            plan = _plan(items_search(project=project, user=staff, query=query, sort=sort))
            if connection.vendor == "postgresql":
                assert "item_text_trgm_idx" in plan, plan
            else:  # the FTS query runs once, never once per item ("=M": by rowid)
                assert "VIRTUAL TABLE INDEX" in plan and "annotator_item_fts" in plan, plan
                assert ":=M" not in plan, plan


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_the_sqlite_index_triggers_survive_every_migration(db):
    """A migration that remakes annotator_item (Django copies the table for some changes)
    drops its triggers: the index would silently go stale."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                       "AND tbl_name = 'annotator_item'")
        names = {row[0] for row in cursor.fetchall()}
    assert {"annotator_item_fts_insert", "annotator_item_fts_delete",
            "annotator_item_fts_update"} <= names


@pytest.mark.django_db(transaction=True)
def test_the_migration_indexes_existing_rows_and_reverses(project, admin_user):
    item = make_item(project, "鞋子质量很差，穿了一周")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("annotator", "0020_background_failures")])
        with connection.cursor() as cursor:
            names = connection.introspection.table_names(cursor)
            indexes = connection.introspection.get_constraints(cursor, "annotator_item")
        assert "annotator_item_fts" not in names and "item_text_trgm_idx" not in indexes
        Item.objects.filter(pk=item.pk).update(text="an old row, written before search")
        executor = MigrationExecutor(connection)
        executor.migrate([("annotator", "0021_item_text_search")])
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert _found(project, admin_user, query="before search") == [
        "an old row, written before search"]
    assert _plan(items_search(project=project, user=admin_user, query="old row"))
