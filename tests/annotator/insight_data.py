"""A small project with known figures, shared by the dashboard and analytics tests.

Items (kind, meta product, human labels -> consensus):
  i1 review "Lamp"    lena positive, mia positive          -> positive
  i2 review "Lamp"    lena negative, mia positive, final negative -> negative
  i3 query  <script>  lena neutral                          -> neutral
  i4 review "Kettle"  lena positive, mia negative           -> tie, left out
  i5 dialogue (no meta), not labeled
  g1 gold review, gold label positive
Versions: v1 (40 labels, macro-F1 0.5), v2 active (60 labels, macro-F1 0.8, confusion
matrix). Predictions of v2: i4 negative, i5 positive; of v1: i5 neutral. i5 is ranked by
v2, i4 by v1 (stale). Runs: v2's run took 125 s; a later run failed.
"""

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotator.models import (
    Annotation,
    Item,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    TrainingRun,
)
from tests.annotator.labeling_factories import make_item
from tests.conftest import PASSWORD

XSS = "<script>alert(1)</script>"
METRICS = {
    "macro_f1": 0.8,
    "accuracy": 0.75,
    "support": 4,
    "evaluated_on": "gold",
    "labels": ["negative", "neutral", "positive"],
    "confusion_matrix": [[1, 0, 0], [0, 0, 1], [0, 0, 2]],
    "per_class": {
        "negative": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "neutral": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "positive": {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2},
    },
}


def aware(*args) -> datetime:
    return timezone.make_aware(datetime(*args))


def build(project: Project, lena) -> dict:
    mia = get_user_model().objects.create_user("mia", password=PASSWORD)
    Membership.objects.create(project=project, user=mia)
    i1 = make_item(project, "great lamp", meta={"product": "Lamp"}, required_labels=2)
    i2 = make_item(project, "lamp broke", meta={"product": "Lamp"}, required_labels=2,
                   final_label="negative")
    i3 = make_item(project, "lamp price?", kind="query", meta={"product": XSS})
    i4 = make_item(project, "kettle ok", meta={"product": "Kettle"}, required_labels=2)
    i5 = make_item(project, "where is my parcel", kind="dialogue")
    make_item(project, "gold lamp", split=Item.Split.GOLD, gold_label="positive")
    votes = [(i1, lena, "positive"), (i1, mia, "positive"), (i2, lena, "negative"),
             (i2, mia, "positive"), (i3, lena, "neutral"), (i4, lena, "positive"),
             (i4, mia, "negative")]
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    for n, (item, user, label) in enumerate(votes):
        annotation = Annotation.objects.create(item=item, labeler=user, label=label,
                                               seconds_spent=4.0)
        # lena's four labels yesterday, mia's three today
        day = today - timedelta(days=1) if user == lena else today
        Annotation.objects.filter(pk=annotation.pk).update(created_at=day - timedelta(minutes=n))
    for item in (i1, i2, i3, i4):
        item.annotation_count = item.annotations.count()
        item.save(update_fields=["annotation_count"])
    # weeks of import: i1, i2 the week of Mon 2 Nov 2026; i3, i4 the week of Mon 9 Nov
    Item.objects.filter(pk__in=[i1.pk, i2.pk]).update(created_at=aware(2026, 11, 2, 9))
    Item.objects.filter(pk__in=[i3.pk, i4.pk]).update(created_at=aware(2026, 11, 10, 9))

    started = today - timedelta(hours=3)
    run1 = TrainingRun.objects.create(project=project, status="succeeded", trigger="manual")
    run2 = TrainingRun.objects.create(project=project, status="succeeded", trigger="schedule")
    TrainingRun.objects.filter(pk=run2.pk).update(
        started_at=started, finished_at=started + timedelta(seconds=125))
    v1 = ModelVersion.objects.create(
        project=project, version=1, training_run=run1, base_model="tiny", artifact_path="p/v1",
        label_count=40, metrics={"macro_f1": 0.5, "accuracy": 0.5, "evaluated_on": "gold"})
    v2 = ModelVersion.objects.create(
        project=project, version=2, training_run=run2, base_model="tiny", artifact_path="p/v2",
        label_count=60, metrics=METRICS, duration_seconds=125.0, device="cpu", is_active=True)
    ModelVersion.objects.filter(pk=v2.pk).update(created_at=started + timedelta(seconds=125))
    TrainingRun.objects.create(project=project, status="failed", trigger="schedule",
                               error="ValueError: need labeled examples of two classes")
    Prediction.objects.create(item=i4, model_version=v2, label="negative",
                              probabilities=[0.7, 0.2, 0.1], uncertainty=0.4)
    Prediction.objects.create(item=i5, model_version=v2, label="positive",
                              probabilities=[0.1, 0.2, 0.7], uncertainty=0.4)
    Prediction.objects.create(item=i5, model_version=v1, label="neutral",
                              probabilities=[0.2, 0.5, 0.3], uncertainty=0.6)
    Item.objects.filter(pk=i5.pk).update(priority=2.0, scored_version=v2)
    Item.objects.filter(pk=i4.pk).update(priority=1.0, scored_version=v1)
    return {"items": [i1, i2, i3, i4, i5], "mia": mia, "v1": v1, "v2": v2}
