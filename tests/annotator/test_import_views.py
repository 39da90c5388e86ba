"""The upload page, the preview with its column mapping, and the import report page."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotator.models import ImportJob, Item, Membership
from annotator.services.importing import import_jobs_sweep


def upload_url(project):
    return reverse("import_upload", args=[project.pk])


def csv_file(content="text,label\nGreat shoes,positive\n好评,positive\n", name="reviews.csv",
             encoding="utf-8"):
    return SimpleUploadedFile(name, content.encode(encoding), content_type="text/csv")


@pytest.fixture
def post_and_import(django_capture_on_commit_callbacks, monkeypatch):
    """Upload a file, map its columns on the preview; the queued import then runs as the
    worker would run it. Returns the mapping POST's response (or the report it leads to)."""
    from annotator import tasks

    monkeypatch.setattr(tasks.import_file_task, "delay", tasks.import_file_task)

    def post(client, project, file, mapping, *, follow_report=False):
        preview = client.post(upload_url(project), {"file": file})
        assert preview.status_code == 302, preview.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(preview["Location"], {"split": "pool", **mapping})
        if response.status_code == 302 and follow_report:
            return client.get(response["Location"])
        return response

    return post


@pytest.fixture
def project_admin(project):
    user = get_user_model().objects.create_user("pia")
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user


def preview_of(client, project, file, **fields):
    """Upload; the job waiting for its mapping and the preview page."""
    response = client.post(upload_url(project), {"file": file, **fields})
    assert response.status_code == 302, response.content.decode()
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("import_preview", args=[project.pk, job.pk])
    return job, client.get(response["Location"]).content.decode()


# --- who may import -----------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, project):
    response = client.get(upload_url(project))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["labeler_client", "outsider_client"])
def test_labelers_get_403_and_cannot_upload(request, who, project):
    client = request.getfixturevalue(who)
    assert client.get(upload_url(project)).status_code == 403
    assert client.post(upload_url(project), {"file": csv_file()}).status_code == 403
    assert not ImportJob.objects.exists()


def test_labelers_get_403_on_every_page_of_an_import(labeler_client, project):
    job = ImportJob.objects.create(project=project, filename="x.csv", status="preview")
    for name in ("import_preview", "import_report", "import_status", "import_rejected_download"):
        assert labeler_client.get(reverse(name, args=[project.pk, job.pk])).status_code == 403
    assert labeler_client.post(reverse("import_cancel", args=[project.pk, job.pk])).status_code \
        == 403
    assert ImportJob.objects.filter(pk=job.pk).exists()


def test_the_projects_admin_imports_without_being_staff(
    client, project, project_admin, post_and_import
):
    client.force_login(project_admin)
    response = post_and_import(client, project, csv_file(), {"text_column": "text"},
                               follow_report=True)
    assert "2 imported" in response.content.decode()
    assert ImportJob.objects.get().created_by == project_admin


def test_the_admin_of_another_project_gets_403(client, other_project, project, project_admin):
    client.force_login(project_admin)
    assert client.get(upload_url(other_project)).status_code == 403
    assert client.get(upload_url(project)).status_code == 200


# --- upload and preview -------------------------------------------------------------------


def test_admin_sees_the_upload_form(admin_client, project):
    response = admin_client.get(upload_url(project))
    assert response.status_code == 200
    assert b'name="file"' in response.content and b'name="encoding"' in response.content
    assert b"negative, neutral, positive" in response.content


def test_the_preview_shows_format_encoding_columns_and_the_first_rows_escaped(
    admin_client, project
):
    rows = ["<script>alert(1)</script>", "x" * 500] + [f"review {i}" for i in range(20)]
    content = "sku,Review,<b>brand</b>\n" + "".join(f"{i},{text},acme\n"
                                                   for i, text in enumerate(rows))
    job, page = preview_of(admin_client, project, csv_file(content, name="shop.csv"))
    assert (job.status, Item.objects.count()) == ("preview", 0)
    with storages["artifacts"].open(job.upload_path) as kept:  # where workers read it
        assert kept.read() == content.encode()
    assert "Read as <strong>CSV</strong> in <strong>UTF-8</strong>" in page
    assert "3 columns: sku, Review, &lt;b&gt;brand&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "x" * 120 + "…" in page and "x" * 121 not in page
    assert "review 7" in page and "review 8" not in page  # the first 10 rows
    assert '<option value="Review" selected>' in page  # a likely text column is preselected


def test_the_preview_names_a_detected_legacy_encoding(admin_client, project):
    content = "text,label\n质量很好，推荐购买,positive\n物流太慢,negative\n"
    _, page = preview_of(admin_client, project, csv_file(content, encoding="gbk"))
    assert "<strong>GB18030</strong>" in page and "质量很好，推荐购买" in page


def test_the_columns_of_a_jsonl_file_are_the_keys_of_its_first_objects(admin_client, project):
    lines = [{"body": "good", "stars": 5}, {"body": "bad", "shop": {"id": 7}}]
    content = "".join(json.dumps(line) + "\n" for line in lines)
    _, page = preview_of(admin_client, project, csv_file(content, name="r.jsonl"))
    assert "Read as <strong>JSONL</strong>" in page
    assert "3 columns: body, stars, shop" in page
    assert "{&quot;id&quot;: 7}" in page


@pytest.mark.parametrize(("content", "error"), [
    (b"text\nfine\nbin\x00ary\n", "line 3: binary data (NUL byte)"),
    ("text\n好评\n".encode("gbk"), "line 2: cannot tell the encoding of this file"),
    (b"text\n", "the file has a header but no rows"),
])
def test_a_file_that_cannot_be_read_is_refused_on_upload(admin_client, project, content, error):
    kept = uploads()
    upload = SimpleUploadedFile("bad.csv", content, content_type="text/csv")
    response = admin_client.post(upload_url(project), {"file": upload})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not ImportJob.objects.exists() and uploads() == kept


def uploads() -> set[str]:
    """What the artifacts storage (where workers read uploads) keeps under uploads/."""
    storage = storages["artifacts"]
    return set(storage.listdir("uploads")[1]) if storage.exists("uploads") else set()


def test_an_encoding_declared_on_upload_reads_what_detection_cannot_tell(admin_client, project):
    job, page = preview_of(admin_client, project, csv_file("text\n好评\n", encoding="gbk"),
                           encoding="gb18030")
    assert "<strong>GB18030</strong>" in page and "好评" in page
    assert job.options["encoding"] == "gb18030"


def test_the_preview_reads_the_file_again_with_another_format(admin_client, project):
    job, page = preview_of(admin_client, project, csv_file("a\tb\none\ttwo\n", name="x.csv"))
    assert "1 column: a\tb" in page
    url = reverse("import_preview", args=[project.pk, job.pk])
    page = admin_client.get(url, {"fmt": "tsv"}).content.decode()
    assert "Read as <strong>TSV</strong>" in page and "2 columns: a, b" in page
    assert '<input type="hidden" name="fmt" value="tsv">' in page


def test_an_unknown_extension_is_refused_on_the_form(admin_client, project):
    response = admin_client.post(upload_url(project), {"file": csv_file(name="reviews.xlsx")})
    assert response.status_code == 200
    assert "cannot tell the format of" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(
    admin_client, project, settings
):
    settings.UPLOAD_MAX_BYTES = 100
    response = admin_client.post(upload_url(project),
                                 {"file": csv_file("text\n" + "a long review\n" * 20)})
    assert response.status_code == 413
    assert "accepts at most" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_other_requests_have_their_own_smaller_limit(admin_client, project, settings):
    settings.REQUEST_MAX_BYTES = 50
    response = admin_client.post(reverse("api_predict", args=[project.pk]),
                                 data='{"texts": ["' + "x" * 100 + '"]}',
                                 content_type="application/json")
    assert response.status_code == 413 and "accepts at most" in response.json()["detail"]


# --- the mapping ----------------------------------------------------------------------------


def test_admin_maps_the_columns_and_reads_the_report(
    admin_client, admin_user, project, post_and_import
):
    file = csv_file("body,verdict\nGreat shoes,positive\nGreat shoes,positive\n")
    response = post_and_import(admin_client, project, file, {
        "text_column": "body", "label_column": "verdict", "split": "gold"})
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import_report", args=[project.pk, job.pk])
    item = Item.objects.get()
    assert (item.text, item.split, item.gold_label) == ("Great shoes", "gold", "positive")
    assert job.created_by == admin_user
    assert (job.options["text_column"], job.options["label_column"]) == ("body", "verdict")
    report = admin_client.get(response["Location"])
    assert b"1 imported" in report.content and b"1 duplicate" in report.content
    assert b"same clean text earlier in the file" in report.content


def test_a_mapping_that_names_a_column_not_in_the_file_is_refused(admin_client, project):
    job, _ = preview_of(admin_client, project, csv_file())
    url = reverse("import_preview", args=[project.pk, job.pk])
    response = admin_client.post(url, {"text_column": "text", "label_column": "verdict",
                                       "meta_columns": ["shop"], "split": "pool"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "no column verdict in this file" in page and "no column shop in this file" in page
    job.refresh_from_db()
    assert job.status == "preview"


def test_the_text_column_must_be_chosen(admin_client, project):
    job, page = preview_of(admin_client, project, csv_file("comment\nnice\n"))
    assert '<option value="" selected>choose a column</option>' in page
    response = admin_client.post(reverse("import_preview", args=[project.pk, job.pk]),
                                 {"split": "pool"})
    assert "This field is required" in response.content.decode()


def test_a_rejected_import_shows_the_error_and_writes_nothing(
    admin_client, project, post_and_import
):
    response = post_and_import(
        admin_client, project, csv_file("text,label\nfine,positive\nbad,great\n"),
        {"text_column": "text", "label_column": "label"}, follow_report=True,
    )
    assert Item.objects.count() == 0
    assert ImportJob.objects.get().status == "failed"
    assert (
        "Nothing was imported: line 3: label &#x27;great&#x27; is not in"
        in response.content.decode()
    )


def test_an_invalid_row_error_reads_well_on_the_web(admin_client, project, post_and_import):
    response = post_and_import(admin_client, project, csv_file("text\nfine\n<p></p>\n"),
                               {"text_column": "text"}, follow_report=True)
    assert ("line 3: empty text after cleaning (fix the row, or choose to skip invalid rows)"
            in response.content.decode())


def test_the_mapping_is_queued_for_a_worker_and_the_report_shows_progress(
    admin_client, project, django_capture_on_commit_callbacks, monkeypatch
):
    from annotator import tasks

    queued = []
    monkeypatch.setattr(tasks.import_file_task, "delay", queued.append)
    job, _ = preview_of(admin_client, project, csv_file())
    preview_url = reverse("import_preview", args=[project.pk, job.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(preview_url, {"text_column": "text", "split": "pool"})
        admin_client.post(preview_url, {"text_column": "text", "split": "pool"})  # twice
    job.refresh_from_db()
    assert queued == [job.pk] and job.status == "queued" and Item.objects.count() == 0
    assert admin_client.get(preview_url)["Location"] == response["Location"]
    page = admin_client.get(response["Location"]).content.decode()
    assert "Waiting for a worker" in page and "<progress" in page
    status_url = reverse("import_status", args=[project.pk, job.pk])
    assert admin_client.get(status_url).json()["status"] == "queued"

    tasks.import_file_task(job.pk)  # the worker
    job.refresh_from_db()
    assert (job.status, job.imported, job.percent) == ("succeeded", 2, 100)
    assert not storages["artifacts"].exists(job.upload_path)  # the kept upload is gone
    assert admin_client.get(status_url).json()["finished"] is True
    assert "2 imported" in admin_client.get(response["Location"]).content.decode()


def test_the_upload_and_the_mapping_require_a_csrf_token(admin_user, project, post_and_import):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(upload_url(project), {"file": csv_file()}).status_code == 403
    assert not ImportJob.objects.exists()

    client.get(upload_url(project))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    preview = client.post(upload_url(project), {"file": csv_file(), "csrfmiddlewaretoken": token})
    assert preview.status_code == 302
    assert client.post(preview["Location"], {"text_column": "text", "split": "pool"}) \
        .status_code == 403
    assert ImportJob.objects.get().status == "preview"


# --- cancel and clean-up --------------------------------------------------------------------


def test_a_preview_can_be_cancelled_and_its_file_is_deleted(admin_client, project):
    job, page = preview_of(admin_client, project, csv_file())
    assert reverse("import_cancel", args=[project.pk, job.pk]) in page
    response = admin_client.post(reverse("import_cancel", args=[project.pk, job.pk]))
    assert response["Location"] == upload_url(project)
    assert not ImportJob.objects.exists()
    assert not storages["artifacts"].exists(job.upload_path)


def test_a_queued_import_is_not_cancelled(admin_client, project):
    job = ImportJob.objects.create(project=project, filename="x.csv", status="queued")
    response = admin_client.post(reverse("import_cancel", args=[project.pk, job.pk]))
    assert response["Location"] == reverse("import_report", args=[project.pk, job.pk])
    job.refresh_from_db()
    assert job.status == "queued"


def test_the_sweep_deletes_previews_left_for_more_than_a_day(admin_client, project):
    old, _ = preview_of(admin_client, project, csv_file())
    fresh = ImportJob.objects.create(project=project, filename="y.csv", status="preview")
    finished = ImportJob.objects.create(project=project, filename="z.csv", status="succeeded")
    for job, age in ((old, timedelta(hours=25)), (fresh, timedelta(hours=23)),
                     (finished, timedelta(days=3))):
        ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - age)
    assert import_jobs_sweep()["previews"] == 1
    assert set(ImportJob.objects.values_list("pk", flat=True)) == {fresh.pk, finished.pk}
    assert not storages["artifacts"].exists(old.upload_path)


# --- links ------------------------------------------------------------------------------------


def test_the_project_admin_links_to_the_upload_page(admin_client, project):
    response = admin_client.get(reverse("admin:annotator_project_changelist"))
    assert upload_url(project).encode() in response.content


def test_the_report_of_a_preview_leads_to_the_preview(admin_client, project):
    job = ImportJob.objects.create(project=project, filename="x.csv", status="preview")
    response = admin_client.get(reverse("import_report", args=[project.pk, job.pk]))
    assert response["Location"] == reverse("import_preview", args=[project.pk, job.pk])
