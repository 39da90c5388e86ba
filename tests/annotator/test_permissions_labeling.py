"""Who may open which labeling view: anonymous, outsider, labeler, admin."""

import pytest
from django.urls import reverse

from annotator.models import Annotation
from tests.annotator.labeling_factories import make_item

LABELER_VIEWS = [  # (url name, method)
    ("label_page", "get"),
    ("label_next", "get"),
    ("label_undo", "get"),
    ("label_submit", "post"),
    ("label_skip", "post"),
]
ADMIN_VIEWS = [("agreement", "get")]


@pytest.fixture
def item(project):
    return make_item(project, "a review")


def _call(client, name, method, project, item):
    url = reverse(name, args=[project.pk])
    if method == "get":
        return client.get(url)
    if name == "label_submit":  # a label is taken for the item served (leased) to you
        client.get(reverse("label_next", args=[project.pk]))
    return client.post(url, {"item": item.pk, "label": "positive"})


@pytest.mark.parametrize("name,method", LABELER_VIEWS + ADMIN_VIEWS)
def test_anonymous_is_sent_to_login(client, project, item, name, method):
    response = _call(client, name, method, project, item)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name,method", LABELER_VIEWS + ADMIN_VIEWS)
def test_labeler_of_another_project_gets_404(outsider_client, project, item, name, method):
    assert _call(outsider_client, name, method, project, item).status_code == 404
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("name,method", LABELER_VIEWS)
def test_member_may_label(labeler_client, project, item, name, method):
    expected = 404 if name == "label_undo" else 200  # nothing to undo yet
    assert _call(labeler_client, name, method, project, item).status_code == expected


@pytest.mark.parametrize("name,method", LABELER_VIEWS)
def test_admin_may_label_any_project(admin_client, project, item, name, method):
    expected = 404 if name == "label_undo" else 200
    assert _call(admin_client, name, method, project, item).status_code == expected


def test_labeler_gets_403_on_agreement_page(labeler_client, project):
    assert labeler_client.get(reverse("agreement", args=[project.pk])).status_code == 403


def test_admin_sees_agreement_page(admin_client, project):
    assert admin_client.get(reverse("agreement", args=[project.pk])).status_code == 200


def test_labeler_gets_403_on_adjudicate(labeler_client, project, item):
    url = reverse("adjudicate", args=[project.pk, item.pk])
    assert labeler_client.post(url, {"label": "positive"}).status_code == 403
    item.refresh_from_db()
    assert item.final_label == ""


def test_outsider_gets_404_on_adjudicate(outsider_client, project, item):
    url = reverse("adjudicate", args=[project.pk, item.pk])
    assert outsider_client.post(url, {"label": "positive"}).status_code == 404


def test_anonymous_adjudicate_is_sent_to_login(client, project, item):
    url = reverse("adjudicate", args=[project.pk, item.pk])
    assert client.post(url, {"label": "positive"}).status_code == 302


def test_item_of_another_project_cannot_be_submitted_through_mine(
    labeler_client, project, other_project
):
    foreign = make_item(other_project, "not yours")
    url = reverse("label_submit", args=[project.pk])
    assert labeler_client.post(url, {"item": foreign.pk, "label": "positive"}).status_code == 404
    assert not Annotation.objects.exists()


def test_submit_without_csrf_token_is_refused(labeler, project, item):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(labeler)
    response = client.post(
        reverse("label_submit", args=[project.pk]), {"item": item.pk, "label": "positive"}
    )
    assert response.status_code == 403
    assert not Annotation.objects.exists()


def test_gold_item_cannot_be_labeled_unless_the_admin_asked(labeler_client, project):
    gold = make_item(project, "gold one", split="gold", gold_label="positive")
    url = reverse("label_submit", args=[project.pk])
    assert labeler_client.post(url, {"item": gold.pk, "label": "positive"}).status_code == 403
    assert not Annotation.objects.exists()


def test_labeling_views_answer_only_their_methods(labeler_client, project):
    assert labeler_client.get(reverse("label_submit", args=[project.pk])).status_code == 405
    assert labeler_client.post(reverse("label_next", args=[project.pk])).status_code == 405


def test_project_list_links_labeling_for_all_and_agreement_for_admins(
    labeler_client, admin_user, project
):
    from django.test import Client

    admin_client = Client()
    admin_client.force_login(admin_user)
    label_url = reverse("label_page", args=[project.pk])
    agreement_url = reverse("agreement", args=[project.pk])
    mine = labeler_client.get(reverse("project_list")).content.decode()
    assert label_url in mine and agreement_url not in mine
    admin_page = admin_client.get(reverse("project_list")).content.decode()
    assert label_url in admin_page and agreement_url in admin_page


def test_labelers_see_only_their_projects(outsider_client, project, other_project):
    page = outsider_client.get(reverse("project_list")).content.decode()
    assert other_project.name in page
    assert project.name not in page
    assert reverse("label_page", args=[project.pk]) not in page
