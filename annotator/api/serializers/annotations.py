"""Shapes of the annotations API: an annotation with its provenance."""


from rest_framework import serializers

from annotator.models import Annotation


class AnnotationProvenanceSerializer(serializers.ModelSerializer):
    """One annotation with the provenance fields the export carries (see services/exporting)."""

    item_id = serializers.IntegerField(source="item.id")
    external_id = serializers.CharField(source="item.external_id")
    labeler = serializers.CharField(source="labeler.username")
    model_version = serializers.IntegerField(
        source="model_version.version", allow_null=True, default=None,
        help_text="number of the version that ranked the item when it was picked",
    )
    ranked_by_head = serializers.IntegerField(
        source="ranked_by_head_id", allow_null=True, default=None,
        help_text="the fast loop's head fit that ranked the item (null: a version or none)",
    )

    class Meta:
        model = Annotation
        fields = ["id", "item_id", "external_id", "labeler", "label", "created_at", "updated_at",
                  "seconds_spent", "picked_by", "strategy", "model_version", "ranked_by_head",
                  "predicted_label", "predicted_confidence"]

    def to_representation(self, annotation: Annotation) -> dict:
        """For a labeler (context "manager" False) the model's prediction is blank where the
        project hides suggestions, and always on a gold item (held out from them)."""
        data = super().to_representation(annotation)
        if not self.context.get("manager", True) and (
                self.context.get("hide_predictions") or annotation.item.split == "gold"):
            data["predicted_label"], data["predicted_confidence"] = "", None
        return data
