"""Reads of a label's provenance: which version and strategy put an item in front of its
labeler, and what the model predicted then (stored on the Annotation by the labeling
service). Reads only; the ranking service (services/ranking.py) writes what is read here.
"""

from annotator.models import Annotation, Item, ModelVersion, Prediction, Project, Strategy
from trainer.strategy_names import pool_strategy_for

DIVERSE = (Strategy.EMBEDDING_KMEANS, Strategy.GREEDY_CORESET)


def version_strategy(project: Project) -> str:
    """The score a fine-tuned version ranks by: the project's strategy where trainer.query
    has it; the fast loop's own strategies (per-class ties, embedding diversity) -> margin
    (trainer.strategy_names)."""
    return pool_strategy_for(project.strategy)


def active_prediction(item: Item) -> Prediction | None:
    version_id = item.scored_version_id
    if version_id is None:
        version_id = (ModelVersion.objects.filter(project_id=item.project_id, is_active=True)
                      .values_list("pk", flat=True).first())
    if version_id is None:
        return None
    return Prediction.objects.filter(item=item, model_version_id=version_id).first()


def annotation_provenance(item: Item, *, prediction=...) -> dict:
    """Annotation fields: model version, strategy and the model's prediction at labeling time.

    `prediction`: the active prediction if the caller read it already (None: there is none)."""
    fields: dict = {"model_version_id": item.scored_version_id,
                    "ranked_by_head_id": item.ranked_by_head_id}
    reason = item.queue_reason
    if reason == Annotation.Picked.SEED:
        fields["strategy"] = "seed"
    elif reason == Annotation.Picked.DIVERSITY and item.project.strategy not in DIVERSE:
        fields["strategy"] = "cold_start_diversity"
    elif reason in (Annotation.Picked.UNCERTAINTY, Annotation.Picked.RANDOM_CONTROL,
                    Annotation.Picked.DIVERSITY, Annotation.Picked.CLASS_SAMPLE):
        fields["strategy"] = (item.project.strategy if item.ranked_by_head_id
                              else version_strategy(item.project))
    if item.ranked_by_head_id and item.head_label:  # what the labeler was shown, if anything
        fields["predicted_label"] = item.head_label
        fields["predicted_confidence"] = item.head_confidence
        return fields
    if prediction is ...:
        prediction = active_prediction(item)
    if prediction is not None:
        fields["model_version_id"] = prediction.model_version_id
        fields["predicted_label"] = prediction.label
        fields["predicted_confidence"] = float(max(prediction.probabilities))
    return fields
