"""The model-version API: list with reliability, activate (re-ranks), download, retrain."""

import io
import zipfile
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Membership, TrainingRun
from tests.annotator.serving_helpers import add_version, token_client
from tests.annotator.training_helpers import add_labeled_items


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        yield delay


@pytest.fixture
def versions(project):
    """v1 and v2, the active one (no files: only the download test needs them)."""
    return add_version(project, 1, files=False), add_version(project, 2, active=True, files=False)


@pytest.fixture
def lead(django_user_model, project):
    user = django_user_model.objects.create_user("lead")
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user


def _urls(project, version):
    return [
        ("get", reverse("api_versions", args=[project.id])),
        ("post", reverse("api_version_activate", args=[project.id, version.id])),
        ("get", reverse("api_version_download", args=[project.id, version.id])),
        ("post", reverse("api_retrain", args=[project.id])),
    ]


def test_anonymous_callers_get_401(project, versions):
    for method, url in _urls(project, versions[0]):
        assert getattr(APIClient(), method)(url).status_code == 401, url


@pytest.mark.parametrize("who", ["labeler", "outsider"])
def test_labelers_and_outsiders_cannot_list_activate_download_or_retrain(
        request, who, project, versions):
    client = token_client(request.getfixturevalue(who))
    for method, url in _urls(project, versions[0]):
        response = getattr(client, method)(url)
        assert response.status_code == 403 and "detail" in response.json(), url
    assert not TrainingRun.objects.exists()
    versions[0].refresh_from_db()
    assert not versions[0].is_active


def test_a_version_of_another_project_is_404(admin_user, other_project, versions):
    client = token_client(admin_user)
    for method, url in _urls(other_project, versions[0])[1:3]:
        assert getattr(client, method)(url).status_code == 404, url


def test_the_list_carries_metrics_with_their_n_and_reliability(lead, project, versions):
    versions[1].metrics = {"accuracy": 0.9, "support": 12, "evaluated_on": "gold"}
    versions[1].save()
    rows = token_client(lead).get(reverse("api_versions", args=[project.id])).json()
    assert [(r["number"], r["active"]) for r in rows] == [(2, True), (1, False)]
    assert rows[0]["metrics"]["accuracy"] == 0.9
    assert rows[0]["reliability"]["n"] == 12 and rows[0]["reliability"]["reliable"] is False
    assert rows[1]["reliability"]["n"] is None


def test_activation_rolls_back_and_rescores_the_pool_like_the_ui(
        lead, project, versions, django_capture_on_commit_callbacks):
    url = reverse("api_version_activate", args=[project.id, versions[0].id])
    with mock.patch("annotator.tasks.score_pool_task.delay") as score, \
            django_capture_on_commit_callbacks(execute=True):
        response = token_client(lead).post(url)
    assert response.status_code == 200 and response.json()["active"] is True
    score.assert_called_once_with(versions[0].id)
    versions[1].refresh_from_db()
    assert not versions[1].is_active


def test_a_manager_downloads_the_zip(admin_user, project):
    version = add_version(project, 1)
    response = token_client(admin_user).get(
        reverse("api_version_download", args=[project.id, version.id]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "config.json" in archive.namelist()


def test_retrain_is_409_with_nothing_new_unless_forced(lead, labeler, project):
    add_labeled_items(project, labeler)
    run = TrainingRun.objects.create(project=project, status="succeeded",
                                     started_at=timezone.now(), finished_at=timezone.now())
    version = add_version(project, 1, active=True, files=False)
    version.training_run = run
    version.save()
    url, client = reverse("api_retrain", args=[project.id]), token_client(lead)
    refused = client.post(url, {}, format="json")
    assert refused.status_code == 409 and refused.json()["active_version"] == 1
    assert "detail" in refused.json()
    forced = client.post(url, {"force": True}, format="json")
    assert forced.status_code == 202 and forced.json() == {
        "run_id": TrainingRun.objects.get(status="queued").id, "status": "queued"}
