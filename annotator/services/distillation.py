"""Distillation for serving: a faster student of a version, as a version of its own
(docs/distillation.md).

`model_version_distill(model_version_id, layers)` (task `distill_version_task`, queue
"training", from the registry's Distill button or `manage.py distill_version`): the student
keeps the version's bottom `layers` encoder blocks and learns its predictions over the
project's pool (the stored scores where the version scored every item, else it scores them)
and the human labels it trained on (trainer.distill). It is evaluated on the gold set beside
its teacher, stored like any version, and left inactive for an admin to compare and
activate. The same teacher and depth give the same student back: a repeated task is a no-op.
"""

import logging
import random
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from annotator.lib.db import values_by_id
from annotator.ml.artifacts import (
    model_version_config,
    model_version_local_path,
    model_version_store,
)
from annotator.models import Item, ModelVersion, Prediction, Project
from annotator.queueing import enqueue_on_commit
from annotator.selectors.training import version_training_labels

logger = logging.getLogger(__name__)


def _pool_ids(version: ModelVersion, exclude: set[int]) -> list[int]:
    """Pool items the student learns the teacher on, besides the labeled ones: at most
    DISTILL_POOL_MAX, a seeded random draw beyond it."""
    ids = [i for i in Item.objects.filter(project_id=version.project_id, split=Item.Split.POOL)
           .order_by("id").values_list("id", flat=True) if i not in exclude]
    if len(ids) > settings.DISTILL_POOL_MAX:
        ids = sorted(random.Random(version.pk).sample(ids, settings.DISTILL_POOL_MAX))
    return ids


def _stored_scores(version: ModelVersion, item_ids: list[int]) -> np.ndarray | None:
    """The version's stored probabilities of these items, or None where any is missing."""
    stored = values_by_id(Prediction.objects.filter(model_version=version), "item_id", item_ids,
                    "probabilities")
    if len(stored) < len(item_ids):
        return None
    return np.asarray([stored[i] for i in item_ids], dtype=np.float64)


def _gold(project: Project) -> tuple[list[str], list[str]]:
    rows = Item.objects.filter(project=project, split=Item.Split.GOLD).exclude(gold_label="")
    pairs = [(t, g) for t, g in rows.values_list("text", "gold_label") if g in project.label_names]
    return [t for t, _ in pairs], [g for _, g in pairs]


def model_version_distill_request(*, version: ModelVersion, layers: int | None = None) -> int:
    """Queue the version's distillation for a training worker; the depth it will keep."""
    layers = layers or settings.DISTILL_LAYERS
    if version.distilled_from_id:
        raise ValueError(f"v{version.version} is itself a distilled student: distill its "
                         "teacher instead")
    depth = model_version_config(version).get("num_hidden_layers")
    if layers < 1 or (depth and layers >= depth):
        raise ValueError(f"a student of v{version.version} keeps 1 to {(depth or 2) - 1} of its "
                         f"{depth} layers, not {layers}" if depth else
                         "a student keeps at least one layer")
    enqueue_on_commit("annotator.tasks.distill_version_task", version.pk, layers)
    return layers


def _logged(version: ModelVersion) -> Callable[[dict], None]:
    def progress(state: dict) -> None:
        if state["step"] % 50 == 0 or state["step"] == state["total_steps"]:
            logger.info("distilling v%s: step %s of %s, loss %.4f", version.version,
                        state["step"], state["total_steps"], state["loss"])
    return progress


def model_version_distill(*, model_version_id: int, layers: int | None = None,
                          progress: Callable[[dict], None] | None = None) -> ModelVersion:
    """The student of this version with `layers` blocks (DISTILL_LAYERS): trained, evaluated
    on gold, stored, inactive. Returns the existing one if it was made before."""
    from trainer.distill import DistillConfig, distill

    teacher = ModelVersion.objects.select_related("project", "training_run").get(
        pk=model_version_id)
    layers = layers or settings.DISTILL_LAYERS
    done = ModelVersion.objects.filter(distilled_from=teacher, distilled_layers=layers).first()
    if done is not None:
        return done
    if teacher.distilled_from_id:
        raise ValueError(f"v{teacher.version} is itself a distilled student: distill its "
                         "teacher instead")
    project = teacher.project
    labeled = {item_id: label for item_id, label in version_training_labels(teacher)
               if label in teacher.label_names}
    pool_ids = _pool_ids(teacher, set(labeled))
    texts = values_by_id(Item.objects, "id", list(labeled) + pool_ids, "text")
    labeled_ids = [i for i in labeled if i in texts]
    ids = labeled_ids + pool_ids
    gold_texts, gold_labels = _gold(project)
    config = DistillConfig(layers=layers, device=settings.TRAINING_DEVICE,
                           **settings.DISTILL_OVERRIDES)
    with tempfile.TemporaryDirectory(prefix="distill-") as tmp:
        result = distill(
            teacher_dir=model_version_local_path(teacher),
            pool_texts=[texts[i] for i in pool_ids],
            labeled_texts=[texts[i] for i in labeled_ids],
            labels=[labeled[i] for i in labeled_ids], output_dir=tmp, config=config,
            eval_texts=gold_texts or None, eval_labels=gold_labels or None,
            teacher_proba=_stored_scores(teacher, ids), progress=progress or _logged(teacher))
        metrics = {**result.metrics, "evaluated_on": "gold"} if result.metrics else {}
        if result.agreement is not None:
            metrics["agreement_with_teacher"] = result.agreement
        # a folder of its own: a twin task never writes into this one
        prefix = (f"projects/{project.id}/distilled-v{teacher.version}-{layers}-"
                  f"{uuid.uuid4().hex[:8]}")
        model_version_store(Path(tmp), prefix)
    with transaction.atomic():
        Project.objects.select_for_update().get(id=project.id)
        done = ModelVersion.objects.filter(distilled_from=teacher, distilled_layers=layers).first()
        if done is not None:  # a twin task finished first
            return done
        number = (ModelVersion.objects.filter(project=project)
                  .aggregate(n=Max("version"))["n"] or 0) + 1
        return ModelVersion.objects.create(
            project=project, version=number, base_model=teacher.base_model,
            artifact_path=prefix, label_names=teacher.label_names,
            label_count=len(labeled_ids), metrics=metrics,
            duration_seconds=result.duration_seconds, device=result.device,
            max_length=result.max_length, vocabulary=teacher.vocabulary,
            base_model_source=f"distilled from v{teacher.version}: {layers} of "
                              f"{result.teacher_layers} layers, {result.num_pool} texts",
            distilled_from=teacher, distilled_layers=layers)
