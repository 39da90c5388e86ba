"""Suspicious labels: after each fine-tune, the training labels the model strongly and
consistently disagrees with go to the adjudication queue (docs/label_review.md).

`label_issues_find(model_version_id)` (task `find_label_issues_task`, queue "scoring", after
a version becomes active): one forward pass of the new version over the items it trained on
gives their embeddings; K logistic regressions over them, and K over the texts' character
n-grams, each fitted without the fold it predicts, give out-of-fold probabilities (their
mean); cleanlab keeps the labels they find wrong (trainer.noise). The top
LABEL_REVIEW_MAX_FLAGS become LabelFlags; the previous check's open flags are superseded.
Adjudicated items are never flagged: an admin decided them, and adjudicating an item closes
its open flags (services.labeling.item_adjudicate).
"""

import logging

import numpy as np
from django.conf import settings
from django.db import transaction

from annotator.lib.db import values_by_id
from annotator.models import Item, LabelFlag, ModelVersion, Project
from annotator.selectors.training import version_training_labels

logger = logging.getLogger(__name__)


def _embeddings(version: ModelVersion, texts: list[str]) -> np.ndarray:
    from annotator.ml.artifacts import model_version_local_path
    from trainer.predict import embed, load_scorer

    device = settings.TRAINING_DEVICE
    tokenizer, model = load_scorer(str(model_version_local_path(version)), device=device)
    return embed(model, tokenizer, texts, max_length=version.max_length, device=device)


def label_issues_find(*, model_version_id: int) -> dict:
    """Flag the suspicious training labels of the active version. Idempotent: a version
    already checked, or no longer active, runs no model and writes nothing."""
    from trainer import noise

    version = (ModelVersion.objects.select_related("project", "training_run")
               .filter(id=model_version_id).first())
    if version is None or not version.is_active:
        return {"skipped": "not the active version"}
    if LabelFlag.objects.filter(model_version=version).exists():
        return {"skipped": "already checked"}
    names = list(version.label_names or version.project.label_names)
    rows = [(item_id, label) for item_id, label in version_training_labels(version)
            if label in names]
    texts = values_by_id(Item.objects, "id", [i for i, _ in rows], "text")
    rows = [(item_id, label) for item_id, label in rows if item_id in texts]
    y = [names.index(label) for _, label in rows]
    if len(rows) < settings.LABEL_REVIEW_MIN_LABELS or len(set(y)) < 2:
        return {"skipped": f"too few labels to check ({len(rows)})"}

    trained_texts = [texts[item_id] for item_id, _ in rows]
    proba = noise.judged_out_of_fold(_embeddings(version, trained_texts), trained_texts, y,
                                     n_classes=len(names), seed=version.id)
    adjudicated = {i for i, final in values_by_id(Item.objects, "id", list(texts),
                                                  "final_label").items() if final}
    issues = [issue for issue in noise.find_label_issues(y, proba)
              if rows[issue.index][0] not in adjudicated][:settings.LABEL_REVIEW_MAX_FLAGS]
    flags = [
        LabelFlag(project_id=version.project_id, item_id=rows[issue.index][0],
                  model_version=version, rank=rank, given_label=names[issue.given],
                  given_probability=round(issue.self_confidence, 4),
                  suggested_label=names[issue.suggested],
                  suggested_probability=round(issue.suggested_probability, 4))
        for rank, issue in enumerate(issues, start=1)
    ]
    with transaction.atomic():
        Project.objects.select_for_update().get(id=version.project_id)
        still_active = ModelVersion.objects.filter(id=version.id, is_active=True).exists()
        if not still_active or LabelFlag.objects.filter(model_version=version).exists():
            return {"skipped": "not the active version, or checked meanwhile"}
        LabelFlag.objects.filter(project_id=version.project_id,
                                 status=LabelFlag.Status.OPEN).update(
            status=LabelFlag.Status.SUPERSEDED)
        LabelFlag.objects.bulk_create(flags)
    logger.info("%s: %d of %d training labels flagged", version, len(flags), len(rows))
    return {"labels": len(rows), "flagged": len(flags)}

