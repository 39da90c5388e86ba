"""The "My labels" page: a labeler lists, searches and changes their own labels."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from annotator.models import Annotation, Membership
from annotator.selectors.training import training_labels
from annotator.services.exporting import export_rows
from annotator.services.labeling import annotation_change
from annotator.views.history import PER_PAGE
from tests.annotator.labeling_factories import label_as, make_item, make_items
from tests.conftest import PASSWORD


@pytest.fixture
def colleague(project):
    user = get_user_model().objects.create_user("carl", password=PASSWORD)
    Membership.objects.create(project=project, user=user)
    return user


@pytest.fixture
def mine(project, labeler):
    """Three labels of lena's, oldest first."""
    texts = [("Shoes fell apart after a week", "negative"), ("OK for the price", "neutral"),
             ("鞋子很舒服，推荐", "positive")]
    annotations = []
    for text, label in texts:
        annotation, _ = label_as(labeler, make_item(project, text), label)
        annotations.append(annotation)
    return annotations


def _page(client, project, **params) -> str:
    response = client.get(reverse("my_labels", args=[project.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def _change(client, project, annotation, label, **extra):
    return client.post(reverse("my_label_change", args=[project.pk, annotation.pk]),
                       {"label": label, **extra})


# --- the list -------------------------------------------------------------------------


def test_it_lists_only_my_labels_newest_first(labeler_client, project, mine, colleague):
    theirs, _ = label_as(colleague, make_item(project, "Somebody else's review"), "positive")
    body = _page(labeler_client, project)
    positions = [body.index(f'id="annotation-{a.pk}"') for a in reversed(mine)]
    assert positions == sorted(positions)
    assert f'id="annotation-{theirs.pk}"' not in body and "Somebody else" not in body
    assert "3 labels" in body


def test_it_searches_the_text_case_insensitively(labeler_client, project, mine):
    body = _page(labeler_client, project, q="SHOES fell")
    assert "Shoes fell apart" in body and "OK for the price" not in body
    assert "鞋子很舒服" in _page(labeler_client, project, q="舒服")


def test_it_filters_by_label(labeler_client, project, mine):
    body = _page(labeler_client, project, label="neutral")
    assert "OK for the price" in body and "Shoes fell apart" not in body


def test_it_pages_my_labels(labeler, labeler_client, project):
    for item in make_items(project, PER_PAGE + 5, prefix="review"):
        label_as(labeler, item, "positive")
    first = _page(labeler_client, project, label="positive")
    assert first.count('class="card my-label"') == PER_PAGE
    assert "Page 1 of 2" in first and "label=positive&amp;page=2" in first
    assert _page(labeler_client, project, label="positive", page=2).count(
        'class="card my-label"') == 5


def test_texts_and_labels_are_escaped(labeler, labeler_client, project):
    project.labels = [{"name": "<b>bold</b>", "key": "1"}, {"name": "neutral", "key": "2"}]
    project.save()
    label_as(labeler, make_item(project, "<script>alert(1)</script>"), "<b>bold</b>")
    body = _page(labeler_client, project, q="<script>")
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)" in body
    assert "<b>bold</b>" not in body


def test_a_search_puts_the_best_match_first_and_sorts_by_labeling_time(
        labeler, labeler_client, project, mine):
    label_as(labeler, make_item(project, "Shoes"), "neutral")
    body = _page(labeler_client, project, q="shoes")
    assert body.index(">Shoes<") < body.index("Shoes fell apart")
    assert 'name="sort"' in body and "recently labeled" in body
    oldest_first = _page(labeler_client, project, sort="oldest")
    assert oldest_first.index("Shoes fell apart") < oldest_first.index("OK for the price")


def test_a_search_with_nothing_to_look_for_says_so(labeler_client, project, mine):
    body = _page(labeler_client, project, q="!!!")
    assert "nothing to look for" in body and 'class="card my-label"' not in body


def test_the_search_box_echoes_the_query_escaped(labeler_client, project, mine):
    body = _page(labeler_client, project, q='"><script>x</script>')
    assert "<script>x" not in body and "&quot;&gt;&lt;script&gt;x" in body


def test_the_labeling_page_and_the_project_list_link_to_my_labels(labeler_client, project):
    url = reverse("my_labels", args=[project.pk])
    assert url in labeler_client.get(reverse("label_page", args=[project.pk])).content.decode()
    assert url in labeler_client.get(reverse("project_list")).content.decode()


def test_someone_who_is_not_a_member_gets_403(outsider_client, project):
    assert outsider_client.get(reverse("my_labels", args=[project.pk])).status_code == 403


def test_anonymous_users_are_sent_to_the_login_page(client, project):
    response = client.get(reverse("my_labels", args=[project.pk]))
    assert response.status_code == 302 and reverse("login") in response["Location"]


# --- changing a label ---------------------------------------------------------------


def test_a_labeler_changes_an_old_label_without_a_lease(labeler_client, project, mine):
    oldest = mine[0]
    item = oldest.item
    item.refresh_from_db()
    assert item.leased_to is None and item.annotation_count == 1
    Annotation.objects.filter(pk=oldest.pk).update(updated_at=oldest.updated_at - timedelta(days=1))
    before = Annotation.objects.get(pk=oldest.pk).updated_at
    response = _change(labeler_client, project, oldest, "positive",
                       next=reverse("my_labels", args=[project.pk]) + "?label=negative")
    assert response.status_code == 302
    assert response["Location"].endswith(f"?label=negative#annotation-{oldest.pk}")
    oldest.refresh_from_db()
    item.refresh_from_db()
    assert oldest.label == "positive" and oldest.updated_at > before
    assert item.annotation_count == 1 and Annotation.objects.filter(item=item).count() == 1


def test_a_change_of_an_old_label_reaches_the_export_and_the_training_labels(
    labeler, project, mine
):
    oldest = mine[0]
    annotation_change(labeler=labeler, annotation=oldest, label="neutral")
    rows = [json.loads(line) for line in export_rows(project=project, labeled_only=True)]
    assert {row["item_id"]: row["label"] for row in rows}[oldest.item_id] == "neutral"
    assert dict((pk, label) for pk, _, label in training_labels(project))[
        oldest.item_id] == "neutral"


def test_an_adjudicated_item_keeps_its_final_label_and_a_labeler_is_not_told_it(
    labeler_client, project, mine
):
    """Blind labeling: the admin's final label is a verdict on the other labels too."""
    item = mine[0].item
    item.final_label = "negative"
    item.save()
    response = _change(labeler_client, project, mine[0], "positive")
    body = labeler_client.get(response["Location"]).content.decode()
    assert "adjudicated" not in body.lower() and "negative</strong>" not in body
    item.refresh_from_db()
    assert item.final_label == "negative"
    assert Annotation.objects.get(pk=mine[0].pk).label == "positive"


def test_a_label_outside_the_project_set_is_refused(labeler_client, project, mine):
    response = _change(labeler_client, project, mine[0], "furious")
    assert "unknown label" in labeler_client.get(response["Location"]).content.decode()
    assert Annotation.objects.get(pk=mine[0].pk).label == "negative"


def test_nobody_changes_someone_elses_annotation(client, colleague, project, mine):
    client.force_login(colleague)
    assert _change(client, project, mine[0], "positive").status_code == 403
    assert Annotation.objects.get(pk=mine[0].pk).label == "negative"
    with pytest.raises(PermissionDenied):
        annotation_change(labeler=colleague, annotation=mine[0], label="positive")


def test_not_even_an_admin_changes_a_labelers_annotation(admin_client, project, mine):
    assert _change(admin_client, project, mine[0], "positive").status_code == 403


def test_an_annotation_of_another_project_is_not_found(labeler_client, labeler, project,
                                                       other_project):
    Membership.objects.create(project=other_project, user=labeler)
    elsewhere, _ = label_as(labeler, make_item(other_project, "Phone battery died"), "negative")
    assert _change(labeler_client, project, elsewhere, "positive").status_code == 404


def test_a_labeler_who_left_the_project_cannot_change_their_labels(labeler_client, labeler,
                                                                    project, mine):
    Membership.objects.filter(project=project, user=labeler).delete()
    assert _change(labeler_client, project, mine[0], "positive").status_code == 403
    with pytest.raises(PermissionDenied):
        annotation_change(labeler=labeler, annotation=mine[0], label="positive")


def test_the_service_refuses_an_unknown_label(labeler, mine):
    with pytest.raises(ValidationError):
        annotation_change(labeler=labeler, annotation=mine[0], label="furious")


def test_an_outside_next_url_is_not_followed(labeler_client, project, mine):
    response = _change(labeler_client, project, mine[0], "neutral", next="https://evil.example/")
    assert response["Location"].startswith(reverse("my_labels", args=[project.pk]))


def test_changing_needs_post(labeler_client, project, mine):
    url = reverse("my_label_change", args=[project.pk, mine[0].pk])
    assert labeler_client.get(url).status_code == 405


def test_labels_of_an_archived_project_are_final(labeler, project, mine):
    from django.utils import timezone

    project.archived_at = timezone.now()
    project.save()
    annotation = Annotation.objects.select_related("item__project").get(pk=mine[0].pk)
    with pytest.raises(PermissionDenied, match="archived"):
        annotation_change(labeler=labeler, annotation=annotation, label="neutral")
    mine[0].refresh_from_db()
    assert mine[0].label == "negative"
