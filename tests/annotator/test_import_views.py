"""The admin upload page and the import report page."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotator.models import ImportJob, Item


def upload_url(project):
    return reverse("import_upload", args=[project.pk])


@pytest.fixture
def post_and_import(django_capture_on_commit_callbacks, monkeypatch):
    """POST the upload form; the queued import then runs as the worker would run it."""
    from annotator import tasks

    monkeypatch.setattr(tasks.import_file_task, "delay", tasks.import_file_task)

    def post(client, project, data, *, follow_report=False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(upload_url(project), data)
        if response.status_code == 302 and follow_report:
            return client.get(response["Location"])
        return response

    return post


def csv_file(content="text,label\nGreat shoes,positive\n好评,positive\n", name="reviews.csv"):
    return SimpleUploadedFile(name, content.encode(), content_type="text/csv")


def test_anonymous_users_are_sent_to_the_login_page(client, project):
    response = client.get(upload_url(project))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["labeler_client", "outsider_client"])
def test_non_staff_users_get_403_and_cannot_upload(request, who, project):
    client = request.getfixturevalue(who)
    assert client.get(upload_url(project)).status_code == 403
    response = client.post(
        upload_url(project), {"file": csv_file(), "text_column": "text", "split": "pool"}
    )
    assert response.status_code == 403
    assert Item.objects.count() == 0


def test_non_staff_users_cannot_read_import_reports(labeler_client, project):
    job = ImportJob.objects.create(project=project, filename="x.csv")
    assert (
        labeler_client.get(reverse("import_report", args=[project.pk, job.pk])).status_code == 403
    )


def test_admin_sees_the_upload_form(admin_client, project):
    response = admin_client.get(upload_url(project))
    assert response.status_code == 200
    assert b'name="text_column"' in response.content
    assert b"negative, neutral, positive" in response.content


def test_admin_uploads_with_a_column_mapping_and_reads_the_report(
    admin_client, admin_user, project, post_and_import
):
    response = post_and_import(
        admin_client,
        project,
        {
            "file": csv_file("body,verdict\nGreat shoes,positive\nGreat shoes,positive\n"),
            "text_column": "body",
            "label_column": "verdict",
            "split": "gold",
            "turns_column": "turns",
        },
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import_report", args=[project.pk, job.pk])
    item = Item.objects.get()
    assert (item.text, item.split, item.gold_label) == ("Great shoes", "gold", "positive")
    assert job.created_by == admin_user
    report = admin_client.get(response["Location"])
    assert b"1 imported" in report.content and b"1 duplicate" in report.content
    assert b"same clean text earlier in the file" in report.content


def test_a_rejected_upload_shows_the_error_and_writes_nothing(
    admin_client, project, post_and_import
):
    response = post_and_import(
        admin_client,
        project,
        {
            "file": csv_file("text,label\nfine,positive\nbad,great\n"),
            "text_column": "text",
            "label_column": "label",
            "split": "pool",
        },
        follow_report=True,
    )
    assert Item.objects.count() == 0
    assert ImportJob.objects.get().status == "failed"
    assert (
        "Nothing was imported: line 3: label &#x27;great&#x27; is not in"
        in response.content.decode()
    )


def test_the_upload_post_requires_a_csrf_token(admin_user, project, post_and_import):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    data = {"text_column": "text", "split": "pool"}
    response = client.post(upload_url(project), {**data, "file": csv_file()})
    assert response.status_code == 403
    assert Item.objects.count() == 0

    client.get(upload_url(project))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = post_and_import(
        client, project, {**data, "file": csv_file(), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert Item.objects.count() == 2


def test_the_project_admin_links_to_the_upload_page(admin_client, project):
    response = admin_client.get(reverse("admin:annotator_project_changelist"))
    assert upload_url(project).encode() in response.content


def test_the_upload_is_queued_for_a_worker_and_the_report_shows_progress(
    admin_client, project, django_capture_on_commit_callbacks, monkeypatch
):
    from annotator import tasks

    queued = []
    monkeypatch.setattr(tasks.import_file_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            upload_url(project), {"file": csv_file(), "text_column": "text", "split": "pool"}
        )
    job = ImportJob.objects.get()
    assert queued == [job.pk] and job.status == "queued" and Item.objects.count() == 0
    assert Path(job.upload_path).read_bytes() == csv_file().read()
    page = admin_client.get(response["Location"]).content.decode()
    assert "Waiting for a worker" in page and "<progress" in page
    status_url = reverse("import_status", args=[project.pk, job.pk])
    assert admin_client.get(status_url).json()["status"] == "queued"

    tasks.import_file_task(job.pk)  # the worker
    job.refresh_from_db()
    assert (job.status, job.imported, job.percent) == ("succeeded", 2, 100)
    assert not Path(job.upload_path).exists()  # the kept upload is gone
    assert admin_client.get(status_url).json()["finished"] is True
    assert "2 imported" in admin_client.get(response["Location"]).content.decode()


def test_the_status_endpoint_is_for_staff_only(labeler_client, project):
    job = ImportJob.objects.create(project=project, filename="x.csv")
    url = reverse("import_status", args=[project.pk, job.pk])
    assert labeler_client.get(url).status_code == 403


def test_an_unknown_extension_is_refused_on_the_form(admin_client, project):
    response = admin_client.post(upload_url(project), {
        "file": csv_file(name="reviews.xlsx"), "text_column": "text", "split": "pool"})
    assert response.status_code == 200
    assert "cannot tell the format of" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(
    admin_client, project, settings
):
    settings.UPLOAD_MAX_BYTES = 100
    big = csv_file("text\n" + "a long review\n" * 20)
    response = admin_client.post(upload_url(project), {"file": big, "text_column": "text",
                                                       "split": "pool"})
    assert response.status_code == 413
    assert "accepts at most" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_other_requests_have_their_own_smaller_limit(admin_client, project, settings):
    settings.REQUEST_MAX_BYTES = 50
    response = admin_client.post(reverse("api_predict", args=[project.pk]),
                                 data='{"texts": ["' + "x" * 100 + '"]}',
                                 content_type="application/json")
    assert response.status_code == 413 and "accepts at most" in response.json()["detail"]
