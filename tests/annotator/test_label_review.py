"""Suspicious labels: the check after a fine-tune, the queue, adjudication, the report."""

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from annotator.models import Annotation, Item, LabelFlag, ModelVersion, TrainingRun
from annotator.selectors.label_review import label_review_queue, label_review_report
from annotator.services.label_review import label_issues_find
from annotator.services.labeling import item_adjudicate
from tests.annotator.labeling_factories import make_item

LABELS = ["negative", "neutral", "positive"]
PER_CLASS = 20


@pytest.fixture
def clustered(monkeypatch):
    """The version's 'embeddings': three well separated clusters by each text's true class
    (the text says it), so the check can be judged without a real model."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=6.0, size=(3, 8))

    def embeddings(version, texts):
        true = [LABELS.index(text.split()[0]) for text in texts]
        return centers[true] + rng.normal(size=(len(texts), 8))

    monkeypatch.setattr("annotator.services.label_review._embeddings", embeddings)


@pytest.fixture
def people(project):
    users = get_user_model().objects
    return users.create_user("ada"), users.create_user("bo")


def _labeled_pool(project, people, wrong_by_bo=(3, 27, 45)):
    """60 items, labeled by ada, except the `wrong_by_bo` ones: bo gave them the next class."""
    ada, bo = people
    items = []
    for n in range(3 * PER_CLASS):
        true = LABELS[n // PER_CLASS]
        item = make_item(project, f"{true} {true} {true} review number {n}",
                         annotation_count=1)
        wrong = n in wrong_by_bo
        label = LABELS[(LABELS.index(true) + 1) % 3] if wrong else true
        Annotation.objects.create(item=item, labeler=bo if wrong else ada, label=label)
        items.append(item)
    return items


def _version(project, number=1, items=None):
    run = None
    if items is not None:
        snapshot = [[a.item_id, a.label]
                    for a in Annotation.objects.filter(item__in=items).order_by("item_id")]
        run = TrainingRun.objects.create(project=project, status="succeeded",
                                         label_snapshot=snapshot)
    ModelVersion.objects.filter(project=project).update(is_active=False)
    return ModelVersion.objects.create(project=project, version=number, training_run=run,
                                       artifact_path="unused", label_names=LABELS,
                                       label_count=60, is_active=True)


def test_the_check_flags_the_wrong_labels_most_suspicious_first(project, people, clustered):
    items = _labeled_pool(project, people)
    version = _version(project, items=items)
    result = label_issues_find(model_version_id=version.pk)
    assert result == {"labels": 60, "flagged": 3}
    flags = list(LabelFlag.objects.filter(model_version=version))
    assert {f.item_id for f in flags} == {items[3].pk, items[27].pk, items[45].pk}
    assert [f.rank for f in flags] == [1, 2, 3]
    for flag in flags:
        true = flag.item.text.split()[0]
        assert flag.suggested_label == true and flag.given_label != true
        assert flag.given_probability < 0.2 < flag.suggested_probability
        assert flag.status == LabelFlag.Status.OPEN


def test_a_second_run_is_a_no_op_and_a_new_version_supersedes_open_flags(project, people,
                                                                          clustered):
    items = _labeled_pool(project, people)
    first = _version(project, 1, items)
    label_issues_find(model_version_id=first.pk)
    assert label_issues_find(model_version_id=first.pk) == {"skipped": "already checked"}
    assert LabelFlag.objects.count() == 3
    second = _version(project, 2, items)
    assert label_issues_find(model_version_id=first.pk) == {"skipped": "not the active version"}
    label_issues_find(model_version_id=second.pk)
    assert set(LabelFlag.objects.filter(model_version=first).values_list("status", flat=True)) \
        == {LabelFlag.Status.SUPERSEDED}
    assert LabelFlag.objects.filter(model_version=second, status="open").count() == 3


def test_adjudicated_items_are_never_flagged(project, people, clustered, admin_user):
    items = _labeled_pool(project, people)
    item_adjudicate(admin=admin_user, item=items[3], label="neutral")
    version = _version(project, items=items)
    label_issues_find(model_version_id=version.pk)
    flagged = set(LabelFlag.objects.values_list("item_id", flat=True))
    assert flagged == {items[27].pk, items[45].pk}


def test_too_few_labels_are_not_checked(project, people, clustered):
    items = _labeled_pool(project, people)
    version = _version(project, items=items[:10])
    with override_settings(LABEL_REVIEW_MIN_LABELS=30):
        assert "too few" in label_issues_find(model_version_id=version.pk)["skipped"]
    assert not LabelFlag.objects.exists()


def test_without_a_snapshot_the_check_reads_todays_training_labels(project, people, clustered):
    items = _labeled_pool(project, people)
    version = _version(project)  # no training run: a registered or imported version
    assert label_issues_find(model_version_id=version.pk)["flagged"] == 3
    assert LabelFlag.objects.filter(item=items[45]).exists()


def test_adjudication_confirms_or_keeps_and_the_report_counts_per_labeler(project, people,
                                                                         clustered, admin_user):
    items = _labeled_pool(project, people)
    label_issues_find(model_version_id=_version(project, items=items).pk)
    item_adjudicate(admin=admin_user, item=items[3], label="negative")  # bo was wrong
    item_adjudicate(admin=admin_user, item=items[27], label="positive")  # bo's label stands
    statuses = dict(LabelFlag.objects.values_list("item_id", "status"))
    assert statuses == {items[3].pk: "confirmed", items[27].pk: "kept", items[45].pk: "open"}
    assert LabelFlag.objects.get(item=items[3]).resolved_by == admin_user

    report = label_review_report(project)
    rows = {row["name"]: row for row in report["labelers"]}
    assert rows["bo"] == {"name": "bo", "labels": 3, "flagged": 3, "confirmed": 1, "kept": 1,
                          "open": 1}
    assert rows["ada"]["flagged"] == 0 and rows["ada"]["labels"] == 57
    assert (report["open"], report["confirmed"], report["kept"]) == (1, 1, 1)
    assert report["latest"]["flagged"] == 3
    assert [entry["item"].pk for entry in label_review_queue(project)] == [items[45].pk]


def test_activating_a_version_enqueues_the_check(project):
    from unittest import mock

    from annotator.services.training import on_model_activated

    version = _version(project)
    with mock.patch("annotator.tasks.score_pool_task.delay"), \
            mock.patch("annotator.tasks.find_label_issues_task.delay") as check:
        on_model_activated(version)
    check.assert_called_once_with(version.pk)


@override_settings(LABEL_REVIEW_MIN_LABELS=10)
def test_the_check_runs_the_real_version(project, people, tiny_model):
    """The real path: the version's ONNX encoder embeds the labeled texts."""
    import shutil

    from django.core.files.storage import storages

    items = _labeled_pool(project, people)
    version = _version(project, items=items)
    path = f"tests-review/{project.pk}/v1"
    shutil.copytree(tiny_model, storages["artifacts"].path(path), dirs_exist_ok=True)
    ModelVersion.objects.filter(pk=version.pk).update(artifact_path=path, max_length=16)
    result = label_issues_find(model_version_id=version.pk)
    flags = LabelFlag.objects.filter(model_version=version)
    assert result["labels"] == 60 and result["flagged"] == flags.count()
    assert list(flags.values_list("rank", flat=True)) == list(range(1, flags.count() + 1))


# --- pages ----------------------------------------------------------------------------


@pytest.fixture
def flagged(project, people, clustered):
    items = _labeled_pool(project, people)
    label_issues_find(model_version_id=_version(project, items=items).pk)
    Item.objects.filter(pk=items[45].pk).update(text="positive <script>alert(1)</script> 45")
    return items


def test_admins_see_the_queue_with_the_reason_escaped(admin_client, project, flagged):
    page = admin_client.get(reverse("label_review", args=[project.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "out of fold the model gives it" in html
    assert html.count('class="card disagreement"') == 3
    assert "<td>bo</td><td>3</td><td>3" in html


def test_labelers_cannot_see_the_review(labeler_client, project, flagged):
    assert labeler_client.get(reverse("label_review", args=[project.pk])).status_code == 403
    item = flagged[3]
    assert labeler_client.get(reverse("item_review", args=[project.pk, item.pk])).status_code \
        == 403


def test_adjudicating_from_the_queue_returns_to_it(admin_client, project, flagged):
    back = reverse("label_review", args=[project.pk])
    response = admin_client.post(reverse("adjudicate", args=[project.pk, flagged[3].pk]),
                                 {"label": "negative", "next": back})
    assert response.status_code == 302 and response["Location"] == back
    assert LabelFlag.objects.get(item=flagged[3]).status == "confirmed"
    elsewhere = admin_client.post(reverse("adjudicate", args=[project.pk, flagged[27].pk]),
                                  {"label": "neutral", "next": "https://evil.example/"})
    assert elsewhere["Location"].startswith(reverse("agreement", args=[project.pk]))


def test_the_item_review_shows_labels_and_flags(admin_client, project, flagged):
    page = admin_client.get(reverse("item_review", args=[project.pk, flagged[45].pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;script&gt;" in html and "<script>alert" not in html
    assert "Waiting for review" in html and "<td>bo</td><td>negative</td>" in html
    assert reverse("item_explanation", args=[project.pk, flagged[45].pk]) in html
