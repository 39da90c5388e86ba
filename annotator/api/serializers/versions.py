"""Shapes of the model versions API: a version with its metrics, their reliability and its
activation, and the retrain request and answers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.models import ModelVersion
from trainer.evaluate import metrics_reliability


class ReliabilitySerializer(serializers.Serializer):
    n = serializers.IntegerField(allow_null=True, help_text="items the metrics were measured on")
    on = serializers.CharField(help_text='"gold", "validation" or "" (unknown)')
    reliable = serializers.BooleanField()
    reason = serializers.CharField(help_text='why not reliable ("" when reliable)')


class ActivationSerializer(serializers.Serializer):
    activated = serializers.BooleanField(
        help_text="whether the run made it active (false: worse than the active one beyond noise)")
    reason = serializers.CharField(help_text='in plain words, e.g. "not activated: macro-F1 '
                                             '0.306 vs 0.675 of v1 on the same 100 gold items"')
    compared_with = serializers.IntegerField(
        allow_null=True, help_text="number of the version it was compared with; null if none")
    on = serializers.CharField(help_text='"gold", "validation" or "" (no comparison)')
    comparison = serializers.DictField(help_text=(
        "n, new_macro_f1, old_macro_f1, difference, upper_bound (one-sided 95% bound of the "
        "difference), worse; empty without a comparison"))
    rule = serializers.DictField(help_text="min_items, confidence, tolerance, resamples, seed")
    forced_by = serializers.CharField(required=False,
                                      help_text='who pressed "Activate anyway", if anyone')
    forced_at = serializers.DateTimeField(required=False)


class ModelVersionSerializer(serializers.ModelSerializer):
    version_id = serializers.IntegerField(source="id")
    number = serializers.IntegerField(source="version")
    active = serializers.BooleanField(source="is_active")
    metrics = serializers.DictField(help_text="accuracy, macro_f1, per_class ... with support")
    reliability = serializers.SerializerMethodField()
    distilled_from = serializers.IntegerField(
        source="distilled_from.version", allow_null=True, default=None, read_only=True,
        help_text="number of the version this student was distilled from; null if none")
    distilled_layers = serializers.IntegerField(
        allow_null=True, read_only=True, help_text="encoder blocks a distilled student kept")
    activation = serializers.SerializerMethodField()
    not_activated_reason = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["version_id", "number", "active", "label_count", "base_model", "metrics",
                  "reliability", "distilled_from", "distilled_layers", "activation",
                  "not_activated_reason", "created_at"]

    @extend_schema_field(ReliabilitySerializer)
    def get_reliability(self, version: ModelVersion) -> dict:
        return metrics_reliability(version.metrics or {})

    @extend_schema_field(ActivationSerializer(allow_null=True))
    def get_activation(self, version: ModelVersion) -> dict | None:
        """The decision of the run that made it; null for versions made otherwise or before."""
        return version.activation or None

    @extend_schema_field(serializers.CharField())
    def get_not_activated_reason(self, version: ModelVersion) -> str:
        """Why the run left it inactive ("" when it activated it)."""
        decision = version.activation or {}
        return decision.get("reason", "") if decision.get("activated") is False else ""


class RetrainRequestSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="train even when no label changed since the active version")


class RetrainResponseSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()


class NothingNewSerializer(serializers.Serializer):
    detail = serializers.CharField()
    active_version = serializers.IntegerField(allow_null=True)
