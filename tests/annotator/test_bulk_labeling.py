"""Bulk labels: many items at once, skipped where they must not be touched, undone as one."""

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from annotator.models import Annotation, BulkLabeling, Item, Membership
from annotator.selectors.training import training_labels
from annotator.services.bulk_labeling import BulkRefused, bulk_label, bulk_label_undo
from tests.annotator.serving_helpers import token_client


def _items(project, n, **fields):
    return [Item.objects.create(project=project, text=f"great fit {project.pk}-{i}",
                                raw_text=f"great fit {i}",
                                content_hash=hashlib.sha256(f"{project.pk}-{i}-{fields}".encode())
                                .hexdigest(), **fields) for i in range(n)]


def _state(project):
    """Everything a bulk action may change: annotations and the items' counters and leases."""
    return (sorted(Annotation.objects.filter(item__project=project)
                   .values_list("item_id", "labeler_id", "label", "picked_by")),
            sorted(Item.objects.filter(project=project).values_list(
                "pk", "annotation_count", "leased_to_id", "lease_expires_at")))


@pytest.mark.django_db
def test_a_bulk_label_is_each_items_annotation_with_its_query(project, lead):
    items = _items(project, 5)
    bulk, skipped = bulk_label(user=lead, project=project, item_ids=[i.pk for i in items],
                               label="positive", query={"kind": "meaning", "q": "fits great"})
    assert skipped == {} and bulk.labeled == 5
    rows = Annotation.objects.filter(item__project=project)
    assert {(a.labeler_id, a.label, a.picked_by, a.bulk_labeling_id) for a in rows} == {
        (lead.pk, "positive", "bulk", bulk.pk)}
    assert set(Item.objects.filter(project=project).values_list("annotation_count", flat=True)) \
        == {1}
    assert BulkLabeling.objects.get().query == {"kind": "meaning", "q": "fits great"}


@pytest.mark.django_db
def test_gold_leased_complete_and_already_labeled_items_are_skipped_and_reported(
        project, lead, labeler):
    free, gold, leased, complete, mine, expired = _items(project, 6)
    Item.objects.filter(pk=gold.pk).update(split=Item.Split.GOLD, gold_label="negative")
    Item.objects.filter(pk=leased.pk).update(leased_to=labeler,
                                             lease_expires_at=timezone.now() + timedelta(hours=1))
    Item.objects.filter(pk=expired.pk).update(leased_to=labeler,
                                              lease_expires_at=timezone.now() - timedelta(hours=1))
    Annotation.objects.create(item=complete, labeler=labeler, label="negative")
    Item.objects.filter(pk=complete.pk).update(annotation_count=1)
    Annotation.objects.create(item=mine, labeler=lead, label="negative")
    ids = [i.pk for i in (free, gold, leased, complete, mine, expired)] + [999_999]

    bulk, skipped = bulk_label(user=lead, project=project, item_ids=ids, label="positive")

    assert skipped == {"gold": [gold.pk], "leased": [leased.pk], "complete": [complete.pk],
                       "yours": [mine.pk], "missing": [999_999]}
    assert bulk.labeled == 2 and bulk.skipped == {"gold": 1, "leased": 1, "complete": 1,
                                                  "yours": 1, "missing": 1}
    assert set(Annotation.objects.filter(bulk_labeling=bulk).values_list("item_id", flat=True)) \
        == {free.pk, expired.pk}
    leased.refresh_from_db()
    assert leased.leased_to == labeler and leased.annotation_count == 0  # untouched
    assert Annotation.objects.get(item=mine, labeler=lead).label == "negative"  # stands


@pytest.mark.django_db
def test_undo_restores_the_exact_previous_state_once(project, lead, labeler):
    items = _items(project, 8)
    Annotation.objects.create(item=items[0], labeler=labeler, label="negative")
    Item.objects.filter(pk=items[0].pk).update(annotation_count=1, required_labels=2)
    Item.objects.filter(pk=items[1].pk).update(leased_to=lead,  # the lead's own lease
                                               lease_expires_at=timezone.now() + timedelta(hours=1))
    before = _state(project)

    bulk, _ = bulk_label(user=lead, project=project, item_ids=[i.pk for i in items],
                         label="positive")
    assert _state(project) != before

    assert bulk_label_undo(user=lead, bulk=bulk) == 8
    assert _state(project) == before
    assert bulk_label_undo(user=lead, bulk=bulk) == 0  # a second undo removes nothing
    bulk.refresh_from_db()
    assert bulk.undone_at is not None


@pytest.mark.django_db
def test_a_labeler_may_bulk_label_only_where_the_project_allows_it(project, labeler, lead):
    items = _items(project, 2)
    with pytest.raises(PermissionDenied):
        bulk_label(user=labeler, project=project, item_ids=[items[0].pk], label="positive")
    project.bulk_labeling_by_labelers = True
    project.save()
    bulk, _ = bulk_label(user=labeler, project=project, item_ids=[items[0].pk], label="positive")
    other = get_user_model().objects.create_user("nina")
    Membership.objects.create(project=project, user=other)
    with pytest.raises(PermissionDenied):
        bulk_label_undo(user=other, bulk=bulk)  # someone else's action
    assert bulk_label_undo(user=lead, bulk=bulk) == 1  # the project's admin may


@pytest.mark.django_db
def test_a_bad_label_an_empty_or_oversized_selection_is_refused_with_nothing_written(
        project, lead, settings):
    items = _items(project, 3)
    settings.BULK_LABEL_MAX_ITEMS = 2
    for kwargs, message in [({"label": "meh", "item_ids": [items[0].pk]}, "not a label"),
                            ({"label": "positive", "item_ids": []}, "at least one"),
                            ({"label": "positive", "item_ids": [i.pk for i in items]},
                             "at most 2")]:
        with pytest.raises(BulkRefused, match=message):
            bulk_label(user=lead, project=project, **kwargs)
    assert not Annotation.objects.exists() and not BulkLabeling.objects.exists()


@pytest.mark.django_db
def test_training_leaves_bulk_labels_out_unless_the_project_keeps_them(project, lead, labeler):
    bulked, single = _items(project, 2)
    bulk_label(user=lead, project=project, item_ids=[bulked.pk], label="positive")
    Annotation.objects.create(item=single, labeler=labeler, label="negative")
    Item.objects.filter(pk=single.pk).update(annotation_count=1)
    assert {pk for pk, _, _ in training_labels(project)} == {single.pk}  # the default
    project.bulk_labels_in_training = True
    project.save()
    assert {pk for pk, _, _ in training_labels(project)} == {bulked.pk, single.pk}


@pytest.mark.django_db
def test_a_thousand_items_in_one_request_and_one_undo_over_the_api(project, lead):
    items = _items(project, 1000)
    client = token_client(lead)
    answer = client.post(f"/api/projects/{project.pk}/bulk-labels/",
                         {"label": "positive", "item_ids": [i.pk for i in items],
                          "query": {"kind": "search", "q": "great fit"}}, format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["bulk"]["labeled"] == 1000 and body["skipped_items"] == {}
    assert Annotation.objects.filter(picked_by="bulk").count() == 1000
    listed = client.get(f"/api/projects/{project.pk}/bulk-labels/").json()
    assert [row["id"] for row in listed] == [body["bulk"]["id"]]
    undo = client.post(f"/api/projects/{project.pk}/bulk-labels/{body['bulk']['id']}/undo")
    assert undo.status_code == 200 and undo.json() == {"removed": 1000}
    assert not Annotation.objects.exists()
    assert not Item.objects.filter(project=project, annotation_count__gt=0).exists()


@pytest.mark.django_db
def test_the_api_refuses_labelers_and_bad_bodies_with_a_message(project, lead, labeler,
                                                                  outsider):
    item = _items(project, 1)[0]
    url = f"/api/projects/{project.pk}/bulk-labels/"
    assert token_client(labeler).post(url, {"label": "positive", "item_ids": [item.pk]},
                                      format="json").status_code == 403
    assert token_client(outsider).post(url, {"label": "positive", "item_ids": [item.pk]},
                                       format="json").status_code == 403
    for body in [{"label": "meh", "item_ids": [item.pk]}, {"label": "positive", "item_ids": []},
                 {"label": "positive"}, {"label": "positive", "item_ids": ["x"]}, []]:
        answer = token_client(lead).post(url, body, format="json")
        assert answer.status_code == 400, (body, answer.content)
