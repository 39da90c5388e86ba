"""The label set: what validate_label_set accepts and how it says no, old rows that hold
anything, and every page that shows labels, for any set the validator lets through."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from annotator.admin import ProjectForm
from annotator.lib.labelsets import (
    NAME_MAX_LENGTH,
    PALETTE,
    RESERVED_KEYS,
    stored_label_set,
    validate_label_set,
)
from annotator.models import Annotation, Item, Project
from tests.annotator.labeling_factories import label_as, make_item

pytestmark = pytest.mark.django_db


def _names(n):
    return [{"name": f"label {i}"} for i in range(n)]


def test_it_strips_names_lowercases_keys_and_fills_in_keys_and_colours():
    labels = validate_label_set([
        {"name": "  好评 "}, {"name": "neutral", "key": "A", "color": "#ABCDEF"}, {"name": "bad"},
    ])
    assert labels == [
        {"name": "好评", "key": "1", "color": PALETTE[0]},
        {"name": "neutral", "key": "a", "color": "#abcdef"},
        {"name": "bad", "key": "2", "color": PALETTE[1]},
    ]


def test_default_keys_are_digits_then_free_letters_never_reserved_ones():
    keys = [label["key"] for label in validate_label_set(_names(20))]
    assert keys[:10] == list("1234567890")
    assert keys[10:] == list("abcdefghij")
    explicit_first = validate_label_set([{"name": "x", "key": "2"}, *_names(19)])
    assert [label["key"] for label in explicit_first][:3] == ["2", "1", "3"]
    assert not RESERVED_KEYS & {label["key"] for label in validate_label_set(_names(20))}


@pytest.mark.parametrize("labels, message", [
    (["joy", "anger"], "must be an object"),
    ({"name": "joy"}, "must be a list"),
    (None, "must be a list"),
    (_names(1), "2 to 20 labels"),
    (_names(21), "2 to 20 labels"),
    ([{"name": "a"}, {"name": "   "}], "name is empty"),
    ([{"name": "a"}, {"key": "2"}], "has no name"),
    ([{"name": "a"}, {"name": 5}], "must be text"),
    ([{"name": "a"}, {"name": "x" * (NAME_MAX_LENGTH + 1)}], "at most 100"),
    ([{"name": "Joy"}, {"name": "joy "}], "same name"),
    ([{"name": "a"}, {"name": "b\x00"}], "control characters"),
    ([{"name": "a"}, {"name": "line\nbreak"}], "control characters"),
    ([{"name": "a", "key": "1"}, {"name": "b", "key": "1"}], "same shortcut key"),
    ([{"name": "a", "key": "A"}, {"name": "b", "key": "a"}], "same shortcut key"),
    ([{"name": "a", "key": "s"}, {"name": "b"}], "taken by the labeling page"),
    ([{"name": "a", "key": "U"}, {"name": "b"}], "taken by the labeling page"),
    ([{"name": "a", "key": "?"}, {"name": "b"}], "taken by the labeling page"),
    ([{"name": "a", "key": "12"}, {"name": "b"}], "one visible character"),
    ([{"name": "a", "key": " "}, {"name": "b"}], "one visible character"),
    ([{"name": "a", "key": "\t"}, {"name": "b"}], "one visible character"),
    ([{"name": "a", "color": "red"}, {"name": "b"}], "#1f77b4"),
    ([{"name": "a", "color": "#12345"}, {"name": "b"}], "#1f77b4"),
    ([{"name": "a", "shortcut": "1"}, {"name": "b"}], "unknown field"),
])
def test_it_refuses_with_a_message_that_says_what_is_wrong(labels, message):
    with pytest.raises(ValidationError) as error:
        validate_label_set(labels)
    assert message in " ".join(error.value.messages)


def test_a_name_fits_every_column_that_stores_labels():
    for model, field in [(Annotation, "label"), (Item, "gold_label"), (Item, "imported_label"),
                         (Item, "final_label")]:
        assert model._meta.get_field(field).max_length == NAME_MAX_LENGTH


def test_project_clean_normalises_and_refuses():
    project = Project(name="P", labels=[{"name": " a "}, {"name": "b"}])
    project.full_clean()
    assert project.labels[0] == {"name": "a", "key": "1", "color": PALETTE[0]}
    project.labels = ["joy", "anger"]
    with pytest.raises(ValidationError, match="must be an object"):
        project.full_clean()


def test_the_admin_form_refuses_a_list_of_strings():
    form = ProjectForm(data={"name": "P", "labels": json.dumps(["joy", "anger"]),
                             "text_kind": "review", "strategy": "margin"})
    assert not form.is_valid()
    assert "must be an object" in " ".join(form.errors["labels"])


def test_the_admin_form_will_not_drop_a_label_in_use(project, labeler):
    label_as(labeler, make_item(project, "great"), "positive")
    form = ProjectForm(instance=project, data={"labels": json.dumps(
        [{"name": "negative"}, {"name": "good"}])})
    form.is_valid()
    assert "'positive' is in use (annotations: 1)" in " ".join(form.errors["labels"])


@pytest.mark.parametrize("stored, names", [
    (["joy", "anger"], ["joy", "anger"]),
    ([{"name": "a"}, {"name": "b", "key": "b", "color": "nope"}], ["a", "b"]),
    ([{"name": "a"}, 5, None, {"key": "1"}, {"name": ""}, ["x"]], ["a"]),
    ({"name": "a"}, []),
    (None, []),
])
def test_old_rows_are_read_whatever_they_hold(stored, names):
    labels = stored_label_set(stored)
    assert [label["name"] for label in labels] == names
    assert all(label["key"] and label["color"].startswith("#") for label in labels)


# --- every page that shows labels, for any label set -----------------------------------

LABEL_PAGES = ["label_page", "import_upload", "insight_dashboard", "model_registry"]


@pytest.fixture
def labeled_project(project, labeler):
    item = make_item(project, "great shoes <b>really</b>")
    label_as(labeler, item, "positive")
    make_item(project, "an item still in the queue")
    return project


def _pages(client, project):
    return {name: client.get(reverse(name, args=[project.pk])) for name in LABEL_PAGES}


def test_pages_show_a_list_of_strings_an_old_admin_saved(admin_client, labeled_project):
    Project.objects.filter(pk=labeled_project.pk).update(labels=["joy", "anger"])
    for name, response in _pages(admin_client, labeled_project).items():
        assert response.status_code == 200, name
    label_page = _pages(admin_client, labeled_project)["label_page"].content.decode()
    assert 'data-label="joy"' in label_page and 'data-label="anger"' in label_page


names = st.text(min_size=0, max_size=NAME_MAX_LENGTH + 5)
keys = st.one_of(st.none(), st.just(""), st.characters(), st.text(max_size=2))
colors = st.one_of(st.none(), st.just(""), st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True),
                   st.text(max_size=8))
label = st.one_of(
    st.fixed_dictionaries({"name": names}, optional={"key": keys, "color": colors}),
    names,  # the strings an old admin form let through
)
label_sets = st.lists(label, min_size=0, max_size=22)
# mostly valid sets: readable names, some in Chinese or with markup, keys left to the defaults
readable_names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                         min_size=1, max_size=NAME_MAX_LENGTH).filter(str.strip)
likely_valid = st.lists(
    st.fixed_dictionaries(
        {"name": readable_names},
        optional={"color": st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True)}),
    min_size=2, max_size=20, unique_by=lambda label: label["name"].strip().casefold())

EXAMPLES = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(admin_client, project, labels):
    try:
        accepted = validate_label_set(labels)
    except ValidationError as error:
        assert error.messages and all(message.strip() for message in error.messages)
        event("refused")
        return
    event("accepted")
    Project.objects.filter(pk=project.pk).update(labels=accepted)
    Annotation.objects.update(label=accepted[0]["name"])
    pages = _pages(admin_client, project)
    for name, response in pages.items():
        assert response.status_code == 200, name
    content = pages["label_page"].content.decode()
    for label in accepted:
        assert f'data-label="{escape(label["name"])}"' in content


@EXAMPLES
@given(labels=label_sets)
def test_any_label_set_renders_every_page_or_is_refused_with_a_message(
    admin_client, labeled_project, labels
):
    _check(admin_client, labeled_project, labels)


@EXAMPLES
@given(labels=likely_valid)
def test_readable_label_sets_render_every_page(admin_client, labeled_project, labels):
    _check(admin_client, labeled_project, labels)


# --- names normalised: one name however it is typed ---------------------------------------


@pytest.mark.parametrize("typed, kept", [
    ("pos\u200b", "pos"), ("\ufeffpos", "pos"), ("po\u00ads", "pos"), ("\u200epos\u200f", "pos"),
    ("ｐｏｓｉｔｉｖｅ", "positive"), ("\u3000positive\u00a0", "positive"), ("好评", "好评"),
    ("👩\u200d💻 dev", "👩\u200d💻 dev"),
])
def test_names_are_kept_normalised(typed, kept):
    assert validate_label_set([{"name": typed}, {"name": "other"}])[0]["name"] == kept


@pytest.mark.parametrize("first, second", [
    ("pos", "pos\u200b"), ("positive", "ｐｏｓｉｔｉｖｅ"), ("Positive", "ＰＯＳＩＴＩＶＥ"),
    ("pos", "\u2060pos "),
])
def test_names_that_normalise_alike_are_refused_with_both_as_given(first, second):
    with pytest.raises(ValidationError) as error:
        validate_label_set([{"name": first}, {"name": second}])
    message = " ".join(error.value.messages)
    assert "Two labels have the same name" in message and "invisible characters" in message
    assert repr(first) in message and repr(second) in message


def test_a_name_of_only_invisible_characters_is_empty():
    with pytest.raises(ValidationError, match="only invisible characters"):
        validate_label_set([{"name": "a"}, {"name": "\u200b\u200b"}])


def test_the_api_refuses_names_that_normalise_alike(admin_user, project):
    from tests.annotator.serving_helpers import token_client

    response = token_client(admin_user).patch(
        reverse("api_project", args=[project.pk]),
        {"labels": [{"name": "positive"}, {"name": "ｐｏｓｉｔｉｖｅ"}]}, format="json")
    assert response.status_code == 400
    assert "same name" in json.dumps(response.json(), ensure_ascii=False)
    project.refresh_from_db()
    assert project.label_names == ["negative", "neutral", "positive"]


def test_a_stored_name_from_before_normalisation_still_works_and_is_renamed_on_save(
    project, labeler
):
    """A row saved before the rule holds "ｐｏｓｉｔｉｖｅ" with annotations: they show, and a
    save of the same set through the API or the pages renames them to "positive"."""
    from annotator.services.projects import label_set_update

    Project.objects.filter(pk=project.pk).update(labels=[
        {"name": "ｐｏｓｉｔｉｖｅ", "key": "1", "color": PALETTE[0]},
        {"name": "negative", "key": "2", "color": PALETTE[1]}])
    project.refresh_from_db()
    assert project.label_names == ["ｐｏｓｉｔｉｖｅ", "negative"]
    label_as(labeler, make_item(project, "great"), "ｐｏｓｉｔｉｖｅ")
    label_set_update(project=project, labels=project.label_set)
    project.refresh_from_db()
    assert project.label_names == ["positive", "negative"]
    assert list(Annotation.objects.values_list("label", flat=True)) == ["positive"]


def test_a_label_name_longer_than_fits_is_refused_on_the_page_not_cut(admin_client, project):
    page = admin_client.get(reverse("project_labels", args=[project.pk])).content.decode()
    assert 'maxlength="100"' not in page  # the browser would cut it without a word
    names = [label["name"] for label in project.label_set]
    data = {"labels-TOTAL_FORMS": "3", "labels-INITIAL_FORMS": "3",
            "labels-MIN_NUM_FORMS": "0", "labels-MAX_NUM_FORMS": "20"}
    for i, name in enumerate(names):
        data.update({f"labels-{i}-original": name, f"labels-{i}-name": name,
                     f"labels-{i}-position": str(i + 1)})
    data["labels-2-name"] = "x" * (NAME_MAX_LENGTH + 1)
    response = admin_client.post(reverse("project_labels", args=[project.pk]), data)
    assert response.status_code == 200
    assert "the name is 101 characters long; at most 100 fit" in response.content.decode()
    project.refresh_from_db()
    assert project.label_names == names
