"""Model registry pages, retrain triggers, progress and download: staff only."""

import io
import zipfile
from unittest import mock

import pytest
from django.urls import reverse

from annotator.models import ModelVersion, TrainingRun
from annotator.services import training as svc
from tests.annotator.training_helpers import add_labeled_items
from tests.trainer.tiny import LABELS, fake_train_copying


@pytest.fixture
def version(project, labeler, monkeypatch, tiny_model):
    add_labeled_items(project, labeler)
    monkeypatch.setattr("trainer.train.train", fake_train_copying(tiny_model))
    run = TrainingRun.objects.create(project=project)
    return svc.training_run_execute(run_id=run.id)


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        yield delay


def _urls(project, version):
    return [
        ("get", reverse("model_registry", args=[project.id])),
        ("get", reverse("training_progress", args=[project.id])),
        ("get", reverse("version_download", args=[project.id, version.id])),
        ("post", reverse("retrain_now", args=[project.id])),
        ("post", reverse("version_activate", args=[project.id, version.id])),
    ]


def test_anonymous_users_are_sent_to_the_login_page(client, project, version):
    for method, url in _urls(project, version):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


@pytest.mark.parametrize("who", ["labeler_client", "outsider_client"])
def test_labelers_and_outsiders_are_forbidden(request, who, project, version):
    client = request.getfixturevalue(who)
    for method, url in _urls(project, version):
        assert getattr(client, method)(url).status_code == 403, url
    assert TrainingRun.objects.count() == 1  # no run was queued


def test_api_retrain_is_forbidden_to_anonymous_and_non_staff(client, labeler, project):
    url = reverse("api_retrain", args=[project.id])
    assert client.post(url).status_code in (401, 403)
    client.force_login(labeler)
    assert client.post(url).status_code == 403
    assert not TrainingRun.objects.exists()


def test_registry_lists_versions_with_metrics_and_active_flag(admin_client, project, version):
    response = admin_client.get(reverse("model_registry", args=[project.id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "v1" in body and "(active)" in body and "0.500" in body and "Retrain now" in body


def test_registry_shows_the_stopping_signal_once_versions_have_predictions(
    admin_client, project, version
):
    from annotator.models import Item, Prediction

    url = reverse("model_registry", args=[project.id])
    assert "Stopping signal" not in admin_client.get(url).content.decode()
    for item in Item.objects.filter(project=project)[:5]:
        Prediction.objects.create(item=item, model_version=version, label=LABELS[0],
                                  probabilities=[0.9, 0.05, 0.05], uncertainty=0.1)
    body = admin_client.get(url).content.decode()
    assert "Stopping signal" in body and "Keep labeling." in body


def test_retrain_button_queues_one_run(admin_client, admin_user, project, labeler, no_broker,
                                       django_capture_on_commit_callbacks):
    add_labeled_items(project, labeler)
    url = reverse("retrain_now", args=[project.id])
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url).status_code == 302
        admin_client.post(url)
    run = TrainingRun.objects.get()
    assert run.trigger == "manual" and run.triggered_by == admin_user
    no_broker.assert_called_once_with(run.id)


def test_retrain_button_needs_post(admin_client, project):
    assert admin_client.get(reverse("retrain_now", args=[project.id])).status_code == 405


def test_api_retrain_returns_the_run_id(admin_client, project, labeler):
    add_labeled_items(project, labeler)
    url = reverse("api_retrain", args=[project.id])
    first = admin_client.post(url)
    second = admin_client.post(url)
    assert first.status_code == 202
    assert first.json() == {"run_id": TrainingRun.objects.get().id, "status": "queued"}
    assert second.json()["run_id"] == first.json()["run_id"]


def test_activate_rolls_back_to_an_earlier_version(admin_client, project, version):
    newer = ModelVersion.objects.create(project=project, version=2, artifact_path="x")
    svc.model_version_activate(version=newer)
    response = admin_client.post(reverse("version_activate", args=[project.id, version.id]))
    assert response.status_code == 302
    assert list(ModelVersion.objects.filter(is_active=True)) == [version]


def test_activate_checks_the_version_belongs_to_the_project(admin_client, other_project, version):
    url = reverse("version_activate", args=[other_project.id, version.id])
    assert admin_client.post(url).status_code == 404


def test_progress_reports_the_latest_run(admin_client, project):
    url = reverse("training_progress", args=[project.id])
    assert admin_client.get(url).json() == {"run": None}
    run = TrainingRun.objects.create(project=project, status="running", progress={
        "epoch": 1, "epochs": 3, "step": 4, "total_steps": 30, "loss": 0.9})
    data = admin_client.get(url).json()
    assert data["run"] == run.id and data["status"] == "running"
    assert data["progress"]["step"] == 4 and data["progress"]["total_steps"] == 30


@pytest.mark.slow
def test_downloaded_zip_loads_in_a_transformers_pipeline(admin_client, project, version, tmp_path):
    from transformers import pipeline

    response = admin_client.get(reverse("version_download", args=[project.id, version.id]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response.streaming
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert "config.json" in archive.namelist()
        archive.extractall(tmp_path)
    prediction = pipeline("text-classification", model=str(tmp_path))("love it")
    assert prediction[0]["label"] in LABELS


def test_the_zip_writes_every_entry_as_zip64_so_files_over_2_gib_fit(admin_client, project):
    import struct
    import uuid

    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    prefix = f"projects/{project.id}/zip64-{uuid.uuid4().hex}"
    files = {"config.json": b"{}", "weights/model.safetensors": b"\0" * 5000}
    for name, content in files.items():
        storages["artifacts"].save(f"{prefix}/{name}", ContentFile(content))
    version = ModelVersion.objects.create(project=project, version=7, artifact_path=prefix,
                                          base_model="tiny", label_names=LABELS)
    response = admin_client.get(reverse("version_download", args=[project.id, version.id]))
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == files
        for info in archive.infolist():
            # the local header (streamed before the size is known) carries a zip64 extra field
            # (id 0x0001); without it zipfile refuses to finish an entry over 2 GiB
            (name_length,) = struct.unpack_from("<H", data, info.header_offset + 26)
            extra_at = info.header_offset + 30 + name_length
            assert data[extra_at:extra_at + 2] == b"\x01\x00", info.filename
