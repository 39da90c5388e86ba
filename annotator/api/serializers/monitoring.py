"""Alert rules in the API: validation of what a manager sends, shape of what comes back."""

from rest_framework import serializers

from annotator.lib import webhook_targets
from annotator.models import AlertRule
from annotator.selectors.insight import FIELD_RE


class AlertRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = ["id", "name", "label", "threshold", "window", "meta_field", "meta_value",
                  "webhook_url", "is_active", "above", "last_share", "created_at"]
        read_only_fields = ["above", "last_share", "created_at"]
        extra_kwargs = {"window": {"min_value": 1, "max_value": 10_000}}

    def validate_threshold(self, value: float) -> float:
        if not 0 <= value < 1:
            raise serializers.ValidationError("a share from 0 to below 1, e.g. 0.3")
        return value

    def validate_label(self, value: str) -> str:
        project = self.context["project"]
        if value not in project.label_names:
            raise serializers.ValidationError(
                f"not a label of the project: {', '.join(project.label_names)}")
        return value

    def validate_meta_field(self, value: str) -> str:
        if value and not FIELD_RE.fullmatch(value):  # as the analytics page groups by
            raise serializers.ValidationError("1-50 letters, digits or _")
        return value

    def validate_webhook_url(self, value: str) -> str:
        if value and (problem := webhook_targets.url_problem(value)):
            raise serializers.ValidationError(problem)
        return value


class AlertRuleCreatedSerializer(AlertRuleSerializer):
    """The answer to a create: the only time the webhook secret is shown."""

    class Meta(AlertRuleSerializer.Meta):
        fields = AlertRuleSerializer.Meta.fields + ["secret"]
        read_only_fields = AlertRuleSerializer.Meta.read_only_fields + ["secret"]
