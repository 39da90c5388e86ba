"""The project admin (team lead) manages their own project, like staff do every project:
models, retraining, dashboard, analytics, agreement, adjudication, people. Another
team's project stays closed to them, and labelers manage nothing."""

from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from annotator.models import Membership, TrainingRun
from annotator.services.labeling import item_adjudicate
from tests.annotator.labeling_factories import make_item
from tests.annotator.training_helpers import add_labeled_items


@pytest.fixture
def item(project):
    return make_item(project, "a review")


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        yield delay


def _manage_urls(project):
    """(method, url) of every project-admin page and action that needs no model version."""
    return [
        ("get", reverse("model_registry", args=[project.pk])),
        ("get", reverse("training_progress", args=[project.pk])),
        ("post", reverse("retrain_now", args=[project.pk])),
        ("post", reverse("api_retrain", args=[project.pk])),
        ("get", reverse("insight_dashboard", args=[project.pk])),
        ("get", reverse("insight_analytics", args=[project.pk])),
        ("get", reverse("insight_analytics_csv", args=[project.pk])),
        ("get", reverse("people", args=[project.pk])),
    ]


def test_a_project_admin_manages_their_project(lead_client, lead, project):
    add_labeled_items(project, lead)
    for method, url in _manage_urls(project):
        assert getattr(lead_client, method)(url).status_code in (200, 202, 302), url
    run = TrainingRun.objects.get(project=project)
    assert run.triggered_by == lead


def test_a_project_admin_gets_403_in_another_teams_project(lead_client, other_project):
    for method, url in _manage_urls(other_project):
        assert getattr(lead_client, method)(url).status_code == 403, url
    assert not TrainingRun.objects.exists()


def test_a_labeler_gets_403_on_every_admin_page(labeler_client, project):
    for method, url in _manage_urls(project):
        assert getattr(labeler_client, method)(url).status_code == 403, url
    assert not TrainingRun.objects.exists()


def test_staff_still_manage_every_project(admin_client, admin_user, project, other_project):
    add_labeled_items(project, admin_user)
    add_labeled_items(other_project, admin_user)
    for method, url in _manage_urls(project) + _manage_urls(other_project):
        assert getattr(admin_client, method)(url).status_code in (200, 202, 302), url


def test_a_project_admin_sees_agreement_and_adjudicates(lead_client, lead, project, item):
    assert lead_client.get(reverse("agreement", args=[project.pk])).status_code == 200
    url = reverse("adjudicate", args=[project.pk, item.pk])
    assert lead_client.post(url, {"label": "positive"}).status_code == 302
    item.refresh_from_db()
    assert (item.final_label, item.adjudicated_by) == ("positive", lead)


def test_agreement_pages_of_another_team_stay_closed(lead, client, other_project, outsider):
    """Not a member: 404 as on every labeling page (the project's existence does not leak);
    a member who is not its admin: 403."""
    foreign = make_item(other_project, "their review")
    client.force_login(lead)
    adjudicate = reverse("adjudicate", args=[other_project.pk, foreign.pk])
    assert client.get(reverse("agreement", args=[other_project.pk])).status_code == 404
    assert client.post(adjudicate, {"label": "positive"}).status_code == 404
    Membership.objects.create(project=other_project, user=lead)
    assert client.get(reverse("agreement", args=[other_project.pk])).status_code == 403
    assert client.post(adjudicate, {"label": "positive"}).status_code == 403
    foreign.refresh_from_db()
    assert foreign.final_label == ""


def test_the_adjudication_service_checks_the_project(lead, other_project):
    foreign = make_item(other_project, "their review")
    with pytest.raises(PermissionDenied):
        item_adjudicate(admin=lead, item=foreign, label="positive")


def test_a_project_admin_may_label_their_project(lead_client, project, item):
    response = lead_client.get(reverse("label_next", args=[project.pk]))
    assert response.json()["item"]["id"] == item.pk


def test_the_project_list_shows_manage_links_only_where_the_user_manages(
    lead_client, lead, project, other_project
):
    Membership.objects.create(project=other_project, user=lead)  # a labeler there
    html = lead_client.get(reverse("project_list")).content.decode()
    for name in ("agreement", "insight_dashboard", "model_registry", "people"):
        assert reverse(name, args=[project.pk]) in html, name
        assert reverse(name, args=[other_project.pk]) not in html, name
    assert reverse("label_page", args=[other_project.pk]) in html
