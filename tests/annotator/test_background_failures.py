"""A task that raises in a worker says so, in plain words, on its project's pages for the
project's managers; the traceback and any server path stay in the log."""

import pytest
from django.test import Client
from django.urls import reverse

from annotator.models import BackgroundFailure, ModelVersion
from annotator.services.background_failures import KEEP, failure_record
from annotator.tasks import embed_pool_task, find_label_issues_task

SECRET_PATH = "/srv/annotator/var/artifacts/projects/1/v1/model.safetensors"


@pytest.fixture
def version(project):
    return ModelVersion.objects.create(project=project, version=3, artifact_path="p/v3",
                                       label_names=["negative", "positive"], is_active=True)


def _raise(exc):
    def task(**_kwargs):
        raise exc
    return task


def test_a_failing_task_is_recorded_in_plain_words(version, monkeypatch):
    monkeypatch.setattr("annotator.services.label_review.label_issues_find",
                        _raise(AssertionError(f"daemonic processes, {SECRET_PATH}")))
    result = find_label_issues_task.apply(args=[version.pk], throw=False)
    assert result.failed()
    [failure] = BackgroundFailure.objects.all()
    assert failure.project == version.project
    assert failure.text == ("The label review of v3 failed: an unexpected error "
                            "(AssertionError). The details are in the worker's log.")
    assert SECRET_PATH not in failure.text


def test_the_cause_is_named_by_its_kind(project, monkeypatch):
    monkeypatch.setattr("annotator.services.pool_embeddings.pool_embed_start",
                        _raise(MemoryError()))
    embed_pool_task.apply(args=[project.pk], throw=False)
    [failure] = BackgroundFailure.objects.all()
    assert failure.text == ("Embedding new items for the fast loop failed: the worker ran out of "
                            "memory. The details are in the worker's log.")


def test_tasks_of_a_deleted_project_or_unknown_tasks_record_nothing(project):
    assert failure_record(task="annotator.tasks.seed_pool_task", args=[999_999],
                          exc=ValueError()) is None
    assert failure_record(task="annotator.tasks.ping", args=["x"], exc=ValueError()) is None
    assert not BackgroundFailure.objects.exists()


def test_a_task_failing_in_a_loop_keeps_only_the_latest(project):
    for _ in range(KEEP + 5):
        failure_record(task="annotator.tasks.seed_pool_task", args=[project.pk], exc=OSError())
    assert BackgroundFailure.objects.filter(dismissed_at__isnull=True).count() == KEEP


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_managers_see_them_on_the_project_pages_and_dismiss_them(project, lead, labeler):
    lead_client, labeler_client = _client(lead), _client(labeler)
    failure_record(task="annotator.tasks.seed_pool_task", args=[project.pk], exc=OSError())
    page = reverse("label_review", args=[project.pk])
    shown = "Choosing the first items to label failed: a file could not be read or written."
    assert shown in lead_client.get(page).content.decode()
    assert shown in lead_client.get(reverse("project_settings", args=[project.pk])).content.decode()
    labeler_page = labeler_client.get(reverse("label_page", args=[project.pk]))
    assert shown not in labeler_page.content.decode()

    answer = lead_client.post(reverse("project_failures_dismiss", args=[project.pk]),
                              {"next": page})
    assert answer.status_code == 302 and answer["Location"] == page
    assert shown not in lead_client.get(page).content.decode()
    assert BackgroundFailure.objects.get().dismissed_at is not None


def test_labelers_cannot_dismiss_and_the_next_address_stays_on_the_site(project, lead, labeler):
    lead_client, labeler_client = _client(lead), _client(labeler)
    url = reverse("project_failures_dismiss", args=[project.pk])
    assert labeler_client.post(url).status_code == 403
    answer = lead_client.post(url, {"next": "//evil.example/"})
    assert answer["Location"] == reverse("project_list")
