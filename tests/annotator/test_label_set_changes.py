"""Changing a project's label set: renames carry the labels along, deletes of labels in use
are refused, order, keys and colours change freely."""

import pytest
from django.core.exceptions import ValidationError

from annotator.models import Annotation, Item, Project
from annotator.services.projects import (
    label_add,
    label_delete,
    label_rename,
    label_reorder,
    label_set_update,
)
from tests.annotator.labeling_factories import label_as, make_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def used(project, labeler):
    """'positive' is in every column that stores a label; 'negative' in annotations only."""
    item = make_item(project, "great", gold_label="positive", imported_label="positive",
                     final_label="positive")
    label_as(labeler, item, "positive")
    label_as(labeler, make_item(project, "awful"), "negative")
    return item


def test_a_rename_follows_into_annotations_gold_imported_and_final_labels(project, used):
    label_rename(project=project, old="positive", new=" 好评 ")
    project.refresh_from_db()
    assert project.label_names == ["negative", "neutral", "好评"]
    assert project.labels[2]["key"] == "3"  # key and colour stay with the label
    item = Item.objects.get(pk=used.pk)
    assert (item.gold_label, item.imported_label, item.final_label) == ("好评",) * 3
    assert sorted(Annotation.objects.values_list("label", flat=True)) == ["negative", "好评"]


def test_swapping_two_names_does_not_merge_them(project, used):
    labels = project.label_set
    labels[0]["name"], labels[2]["name"] = "positive", "negative"
    label_set_update(project=project, labels=labels,
                     renamed={"negative": "positive", "positive": "negative"})
    labels = dict(Annotation.objects.values_list("item__text", "label"))
    assert labels == {"great": "negative", "awful": "positive"}


def test_a_label_in_use_is_not_deleted(project, used):
    with pytest.raises(ValidationError) as error:
        label_delete(project=project, name="positive")
    message = " ".join(error.value.messages)
    assert "'positive' cannot be deleted" in message
    assert "annotations: 1" in message and "gold labels: 1" in message
    project.refresh_from_db()
    assert "positive" in project.label_names


def test_an_unused_label_is_deleted(project, used):
    label_delete(project=project, name="neutral")
    project.refresh_from_db()
    assert project.label_names == ["negative", "positive"]


def test_add_and_reorder(project):
    label_add(project=project, name="mixed", key="m")
    label_reorder(project=project, names=["mixed", "positive", "neutral", "negative"])
    project.refresh_from_db()
    assert [(label["name"], label["key"]) for label in project.labels] == [
        ("mixed", "m"), ("positive", "3"), ("neutral", "2"), ("negative", "1")]


def test_reorder_needs_every_label_once(project):
    with pytest.raises(ValidationError, match="every label"):
        label_reorder(project=project, names=["positive", "negative"])


def test_an_invalid_set_changes_nothing(project, used):
    with pytest.raises(ValidationError, match="same name"):
        label_rename(project=project, old="positive", new="Negative")
    assert Annotation.objects.filter(label="positive").count() == 1
    assert Project.objects.get(pk=project.pk).label_names == ["negative", "neutral", "positive"]


def test_a_rename_of_a_label_someone_else_renamed_meanwhile_is_refused(project, used):
    stale = Project.objects.get(pk=project.pk)
    label_rename(project=project, old="positive", new="good")
    with pytest.raises(ValidationError, match="no longer a label"):
        label_rename(project=stale, old="positive", new="great")
    assert Annotation.objects.filter(label="good").count() == 1
