"""Machines that share no disk, only an object store (S3, moto's mock): what one machine
stores there another one reads (uploads, model versions, pool embeddings, scoring chunks)."""

import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.ml.artifacts import model_version_local_path, model_version_store
from annotator.models import ImportJob, Item, ModelVersion, Prediction
from annotator.services.importing import (
    import_job_cancel,
    import_job_run,
    import_job_start,
    import_job_upload,
    upload_preview,
)
from annotator.services.pool_embeddings import embeddings_load, embeddings_write, missing_ids
from annotator.services.ranking import pool_score
from tests.annotator.labeling_factories import make_item
from tests.annotator.test_active_queue import POOL_TEXTS
from tests.trainer.tiny import LABELS


@pytest.fixture
def machine(settings, tmp_path):
    """Switch this process to another machine's own disk (VAR_DIR); returns the folder."""

    def switch(name: str) -> Path:
        settings.VAR_DIR = tmp_path / name
        settings.VAR_DIR.mkdir()
        return settings.VAR_DIR

    return switch


def _stored(storage, prefix: str) -> list[str]:
    return sorted(obj.key for obj in storage.bucket.objects.filter(Prefix=prefix))


def test_an_upload_kept_on_web_is_imported_by_a_worker_on_another_machine(
    s3_artifacts, project, machine
):
    web = machine("web")
    upload = SimpleUploadedFile("reviews.csv", "text\nGreat shoes\n好评，会回购\n".encode())
    job = import_job_upload(project=project, upload=upload)
    assert _stored(s3_artifacts, "uploads/") == [job.upload_path]
    assert upload_preview(job=job).columns == ["text"]  # the mapping page, on any web machine
    import_job_start(job=job, text_column="text")
    shutil.rmtree(web)  # nothing of web's disk reaches the worker

    machine("worker")
    job = import_job_run(job_id=job.pk)
    assert (job.status, job.imported) == (ImportJob.Status.SUCCEEDED, 2)
    assert sorted(Item.objects.values_list("text", flat=True)) == ["Great shoes", "好评,会回购"]
    assert _stored(s3_artifacts, "uploads/") == []  # imported: the kept upload is deleted


def test_a_cancelled_upload_is_deleted_from_the_object_store(s3_artifacts, project, machine):
    machine("web")
    job = import_job_upload(project=project,
                            upload=SimpleUploadedFile("r.csv", b"text\nfine\n"))
    assert import_job_cancel(job=job)
    assert _stored(s3_artifacts, "uploads/") == []


def _stored_version(project, files: dict[str, bytes]) -> ModelVersion:
    """A version whose files (relative path -> bytes) are in the artifacts storage."""
    version = ModelVersion.objects.create(project=project, version=1,
                                          artifact_path=f"projects/{project.pk}/v1-r1a1-abc")
    for rel, data in files.items():
        storages["artifacts"].save(f"{version.artifact_path}/{rel}", ContentFile(data))
    return version


def test_a_version_copied_from_the_object_store_is_whole_after_a_copy_was_cut_short(
    s3_artifacts, project, machine
):
    machine("scoring")
    files = {"config.json": b"{}", "model.safetensors": b"weights" * 1000,
             "tokenizer/vocab.txt": b"a\nb\n"}
    version = _stored_version(project, files)
    real_open = type(s3_artifacts).open

    def killed_after_the_first_file(storage, name, mode="rb"):
        if not name.endswith("config.json"):
            raise ConnectionError("the process was killed here")
        return real_open(storage, name, mode)

    with mock.patch.object(type(s3_artifacts), "open", killed_after_the_first_file), \
            pytest.raises(ConnectionError):
        model_version_local_path(version)

    folder = model_version_local_path(version)  # the next task on this machine
    assert {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()} == files
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no half copy left


def test_a_version_is_copied_from_the_object_store_once_per_machine(
    s3_artifacts, project, machine
):
    machine("web")
    version = _stored_version(project, {"config.json": b"{}"})
    first = model_version_local_path(version)
    with mock.patch.object(type(s3_artifacts), "open", side_effect=AssertionError("read again")):
        assert model_version_local_path(version) == first


def test_a_version_with_no_stored_files_is_an_error_not_an_empty_folder(
    s3_artifacts, project, machine
):
    web = machine("web")
    version = ModelVersion.objects.create(project=project, version=1, artifact_path="gone/v1")
    with pytest.raises(FileNotFoundError, match="no stored files"):
        model_version_local_path(version)
    assert not (web / "model-cache" / "gone").exists()


def test_pool_embeddings_in_the_object_store_are_found_again(s3_artifacts, project):
    items = [make_item(project, text) for text in POOL_TEXTS[:4]]
    key = "tiny-16"
    embeddings_write(project, key, [items[0].pk, items[1].pk], np.ones((2, 3)))
    ids, emb = embeddings_load(project, key)
    assert ids.tolist() == [items[0].pk, items[1].pk] and emb.shape == (2, 3)
    with mock.patch("annotator.services.pool_embeddings.encoder_key", return_value=key):
        assert missing_ids(project) == [items[2].pk, items[3].pk]


def test_a_version_trained_elsewhere_scores_the_pool_from_the_object_store(
    s3_artifacts, project, machine, settings, tiny_model
):
    machine("training")
    project.random_share, project.uncertainty_after_labels = 0.0, 0
    project.save()
    pool = [make_item(project, text, random_key=i / 100) for i, text in enumerate(POOL_TEXTS)]
    model_version_store(Path(tiny_model), f"projects/{project.pk}/v1")
    version = ModelVersion.objects.create(project=project, version=1, base_model="tiny",
                                          artifact_path=f"projects/{project.pk}/v1",
                                          label_names=LABELS, is_active=True, max_length=16)

    scoring = machine("scoring")
    settings.SCORING_CHUNK_SIZE = 5
    result = pool_score(model_version_id=version.pk)
    assert result["scored"] == len(pool)
    assert Prediction.objects.filter(model_version=version).count() == len(pool)
    assert (scoring / "model-cache" / version.artifact_path / "config.json").exists()
    plan = _stored(s3_artifacts, "scoring/")
    assert sum("/done-" in name for name in plan) == 3  # chunks of 5, 5 and 2
    assert Item.objects.filter(project=project, scored_version=version).exists()
