"""Distillation in the platform: a student version from the Distill button, the task or the
command (the real tiny MiniLM as teacher)."""

import json
import shutil
from unittest import mock

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from annotator.ml.artifacts import model_version_local_path
from annotator.models import Annotation, Item, ModelVersion, Prediction
from annotator.services.distillation import _stored_scores, model_version_distill
from tests.annotator.labeling_factories import make_item
from tests.trainer.tiny import LABELS, TEXTS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAST = override_settings(DISTILL_LAYERS=2, TRAINING_DEVICE="cpu", DISTILL_POOL_MAX=1000,
                         DISTILL_OVERRIDES={"epochs": 1, "max_steps": 3, "num_threads": 1})
UNLABELED = ["the box was dented", "fits my son well", "meh", "<b>never again</b>",
             "good enough for the price"]


@pytest.fixture
def teacher(project, tiny_model):
    ada = get_user_model().objects.create_user("ada")
    for label, texts in TEXTS.items():
        for text in texts[:3]:
            item = make_item(project, text, annotation_count=1)
            Annotation.objects.create(item=item, labeler=ada, label=label)
    for text in UNLABELED:
        make_item(project, text)
    for label, texts in TEXTS.items():
        for text in texts[5:7]:
            make_item(project, f"gold: {text}", split=Item.Split.GOLD, gold_label=label)
    path = f"tests-distill/{project.pk}/v1"
    shutil.copytree(tiny_model, storages["artifacts"].path(path), dirs_exist_ok=True)
    return ModelVersion.objects.create(project=project, version=1, artifact_path=path,
                                       label_names=LABELS, label_count=9, max_length=16,
                                       base_model="all-MiniLM-L6-v2", is_active=True,
                                       metrics={"macro_f1": 0.5})


@FAST
def test_the_student_is_a_new_inactive_version_evaluated_on_gold(teacher):
    from trainer.models import load_classifier

    student = model_version_distill(model_version_id=teacher.pk)
    assert (student.version, student.distilled_from, student.distilled_layers) == (2, teacher, 2)
    assert not student.is_active and ModelVersion.objects.get(pk=teacher.pk).is_active
    assert student.metrics["evaluated_on"] == "gold" and student.metrics["support"] == 6
    assert 0 <= student.metrics["agreement_with_teacher"] <= 1
    assert student.base_model_source == "distilled from v1: 2 of 6 layers, 14 texts"
    folder = model_version_local_path(student)
    _, model = load_classifier(str(folder), device="cpu")
    assert len(model.base_model.encoder.layer) == 2
    info = json.loads((folder / "training.json").read_text())
    assert info["distillation"]["num_labeled"] == 9  # + 5 unlabeled, never the gold items


@FAST
def test_the_same_teacher_and_depth_give_the_same_student_back(teacher):
    first = model_version_distill(model_version_id=teacher.pk)
    with mock.patch("trainer.distill.distill") as again:
        assert model_version_distill(model_version_id=teacher.pk) == first
    again.assert_not_called()
    assert ModelVersion.objects.filter(distilled_from=teacher).count() == 1


@FAST
@override_settings(DISTILL_POOL_MAX=2)
def test_the_pool_is_capped(teacher):
    student = model_version_distill(model_version_id=teacher.pk)
    assert student.base_model_source.endswith("11 texts")  # 9 labeled + 2 of the 5


@FAST
def test_a_student_is_not_distilled_again(teacher):
    student = model_version_distill(model_version_id=teacher.pk)
    with pytest.raises(ValueError, match="itself a distilled student"):
        model_version_distill(model_version_id=student.pk, layers=1)


def test_stored_scores_are_used_only_when_every_item_has_one(teacher):
    items = list(Item.objects.filter(project=teacher.project)[:2])
    Prediction.objects.create(item=items[0], model_version=teacher, label="positive",
                              probabilities=[0.1, 0.2, 0.7], uncertainty=0.5)
    ids = [i.pk for i in items]
    assert _stored_scores(teacher, ids) is None
    Prediction.objects.create(item=items[1], model_version=teacher, label="negative",
                              probabilities=[0.8, 0.1, 0.1], uncertainty=0.2)
    np.testing.assert_allclose(_stored_scores(teacher, ids), [[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])


@FAST
def test_the_task_and_the_command_make_one_student(teacher, capsys):
    from annotator.tasks import distill_version_task

    student_id = distill_version_task(teacher.pk, 2)
    call_command("distill_version", str(teacher.project_id))
    out = capsys.readouterr().out
    assert "v2 (distilled from v1: 2 of 6 layers" in out and "not active" in out
    assert ModelVersion.objects.filter(distilled_from=teacher).get().pk == student_id


def test_the_command_names_a_missing_version(project):
    with pytest.raises(CommandError, match="no active version"):
        call_command("distill_version", str(project.pk))


# --- the registry page ------------------------------------------------------------------


def test_admins_queue_a_distillation_after_commit(admin_client, teacher):
    with mock.patch("annotator.tasks.distill_version_task.delay") as task:
        response = admin_client.post(
            reverse("version_distill", args=[teacher.project_id, teacher.pk]), {"layers": "3"})
    assert response.status_code == 302
    task.assert_called_once_with(teacher.pk, 3)
    page = admin_client.get(reverse("model_registry", args=[teacher.project_id]))
    assert b"into a 3-layer student" in page.content and b">Distill</button>" in page.content


def test_a_student_keeps_fewer_layers_than_its_teacher(admin_client, teacher):
    url = reverse("version_distill", args=[teacher.project_id, teacher.pk])
    with mock.patch("annotator.tasks.distill_version_task.delay") as task:
        response = admin_client.post(url, {"layers": "6"}, follow=True)
    task.assert_not_called()
    assert b"keeps 1 to 5 of its 6 layers, not 6" in response.content


def test_a_student_cannot_be_queued_for_distillation(admin_client, teacher):
    student = ModelVersion.objects.create(project=teacher.project, version=2, artifact_path="x",
                                          label_names=LABELS, distilled_from=teacher,
                                          distilled_layers=2,
                                          metrics={"agreement_with_teacher": 0.9})
    with mock.patch("annotator.tasks.distill_version_task.delay") as task:
        admin_client.post(reverse("version_distill", args=[teacher.project_id, student.pk]))
    task.assert_not_called()
    page = admin_client.get(reverse("model_registry", args=[teacher.project_id])).content
    assert b"itself a distilled student" in page and b"agrees with v1 on 90% of gold" in page


def test_labelers_and_other_admins_cannot_distill(labeler_client, teacher, other_lead,
                                                  client):
    url = reverse("version_distill", args=[teacher.project_id, teacher.pk])
    with mock.patch("annotator.tasks.distill_version_task.delay") as task:
        assert labeler_client.post(url).status_code in (302, 403)
        client.force_login(other_lead)
        assert client.post(url).status_code in (403, 404)
        assert client.get(url).status_code in (403, 404, 405)
    task.assert_not_called()


def test_the_api_names_a_students_teacher(admin_client, teacher):
    ModelVersion.objects.create(project=teacher.project, version=2, artifact_path="x",
                                label_names=LABELS, distilled_from=teacher, distilled_layers=4)
    rows = admin_client.get(f"/api/projects/{teacher.project_id}/versions/").json()
    by_number = {row["number"]: row for row in rows}
    assert (by_number[2]["distilled_from"], by_number[2]["distilled_layers"]) == (1, 4)
    assert (by_number[1]["distilled_from"], by_number[1]["distilled_layers"]) == (None, None)


def test_texts_are_read_a_chunk_of_ids_at_a_time(teacher, monkeypatch,
                                                 django_assert_num_queries):
    from annotator.lib import db

    monkeypatch.setattr(db, "IDS_PER_QUERY", 4)
    items = list(Item.objects.filter(project=teacher.project).order_by("id")[:10])
    with django_assert_num_queries(3):  # 4 + 4 + 2 ids
        found = db.values_by_id(Item.objects, "id", [i.pk for i in items], "text")
    assert found == {i.pk: i.text for i in items}
