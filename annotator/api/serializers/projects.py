"""Request and response shapes of the projects and items API (validation lives here).

Project settings are checked by the settings page's own form and the label set by
annotator.lib.labelsets.validate_label_set, so the API accepts exactly what the app accepts.
"""

from datetime import datetime, time

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.forms.models import model_to_dict
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.forms.projects import SETTINGS_FIELDS, ProjectSettingsForm
from annotator.lib.labelsets import DESCRIPTION_MAX_LENGTH, validate_label_set
from annotator.models import Item, Project, TextKind

META_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    key = serializers.CharField(required=False, allow_blank=True,
                                help_text="one character; filled in when left out")
    color = serializers.CharField(required=False, allow_blank=True,
                                  help_text="#rrggbb; filled in when left out")
    description = serializers.CharField(
        required=False, allow_blank=True, default="",
        help_text=f"optional: one short sentence (at most {DESCRIPTION_MAX_LENGTH} characters, "
                  "spaces collapsed) saying what the label means; the zero-shot suggestions "
                  "compare texts with it. Empty: a sentence made from the name")


class ProjectSerializer(serializers.ModelSerializer):
    labels = LabelSerializer(many=True, source="label_set", read_only=True)

    class Meta:
        model = Project
        fields = ["id", *SETTINGS_FIELDS, "labels", "created_at", "archived_at"]
        read_only_fields = fields


class ProjectWriteSerializer(serializers.Serializer):
    """POST: name and labels required, the other settings default as on the "new project"
    page. PATCH: any of them; `renamed` ({old: new}) carries annotations over to new names."""

    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    text_kind = serializers.ChoiceField(TextKind.choices, required=False)
    labels = LabelSerializer(many=True, required=False,
                             help_text="2 to 20 labels, in the order labelers see them")
    renamed = serializers.DictField(child=serializers.CharField(), required=False,
                                    help_text="PATCH only: old label name -> new name")
    other = serializers.DictField(required=False, read_only=True, help_text=(
        f"also accepted: {', '.join(SETTINGS_FIELDS[3:])} (as on the settings page)"))

    def to_internal_value(self, data) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"detail": "expected a JSON object"})
        allowed = {*SETTINGS_FIELDS, "labels", "renamed"}
        unknown = sorted(set(data) - allowed, key=str)
        if unknown:
            raise serializers.ValidationError({"detail": (
                f"unknown field(s) {', '.join(map(repr, unknown))}; a project has "
                f"{', '.join(sorted(allowed))}")})
        creating = self.instance is None
        errors = {}
        if creating and "labels" not in data:
            errors["labels"] = ["This field is required."]
        current = model_to_dict(self.instance or Project(), fields=SETTINGS_FIELDS)
        form = ProjectSettingsForm({**current, **data}, instance=self.instance)
        if not form.is_valid():
            errors.update({name: list(messages) for name, messages in form.errors.items()})
        labels = None
        if "labels" in data:
            try:
                labels = validate_label_set(data["labels"])
            except DjangoValidationError as error:
                errors["labels"] = error.messages
        renamed = data.get("renamed") or {}
        if creating and renamed:
            errors["renamed"] = ["only when changing a project's labels"]
        elif not isinstance(renamed, dict) or not all(
                isinstance(v, str) for v in renamed.values()):
            errors["renamed"] = ["expected an object of old name -> new name"]
        if errors:
            raise serializers.ValidationError(errors)
        given = SETTINGS_FIELDS if creating else [name for name in SETTINGS_FIELDS if name in data]
        return {"fields": {name: form.cleaned_data[name] for name in given},
                "labels": labels, "renamed": renamed}


class PushItemSerializer(serializers.Serializer):
    """One pushed item (documentation: rows are checked by the importer's rules)."""

    text = serializers.CharField(help_text="cleaned as imports clean it; not needed with turns")
    external_id = serializers.CharField(
        required=False, help_text="your id (at most 200 characters): a retry with the same "
        "external_id creates nothing new")
    label = serializers.CharField(required=False, help_text="a label of the project's set")
    kind = serializers.ChoiceField(TextKind.choices, required=False)
    meta = serializers.DictField(required=False)
    turns = serializers.ListField(child=serializers.DictField(), required=False,
                                  help_text='dialogue: [{"speaker": "customer", "text": "..."}]')


def push_rows(data) -> list:
    """The pushed rows, or a ValidationError ({"detail": ...}) for the request as a whole."""
    if not isinstance(data, list):
        raise serializers.ValidationError({"detail": (
            "expected a JSON array of items ([{\"text\": \"...\"}, ...]) or JSON lines "
            "(Content-Type: application/x-ndjson)")})
    if not data:
        raise serializers.ValidationError({"detail": "no items in the request"})
    limit = settings.API_MAX_PUSH_ITEMS
    if len(data) > limit:
        raise serializers.ValidationError({"detail": (
            f"too many items: {len(data):,}, the limit is {limit:,} per request "
            "(ANNOTATOR_API_MAX_PUSH_ITEMS); send them in batches")})
    return data


class PushRowSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="position in the request, from 0")
    status = serializers.ChoiceField(["created", "exists", "duplicate", "rejected"])
    item_id = serializers.IntegerField(required=False,
                                       help_text="the item created, already there, or duplicated")
    reason = serializers.CharField(required=False)


class PushResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    existing = serializers.IntegerField(help_text="external_id already in the project")
    duplicates = serializers.IntegerField(help_text="same clean text in the project or request")
    rejected = serializers.IntegerField()
    rows = PushRowSerializer(many=True)


# Labels a labeler must not see (blind labeling, a held-out gold set): left out of the
# answer unless the serializer's context says the reader manages the project.
MANAGER_ONLY_FIELDS = ("imported_label", "gold_label", "final_label")


class ItemSerializer(serializers.ModelSerializer):
    """An item. `imported_label`, `gold_label` and `final_label` are for managers only:
    pass context={"manager": True}; a labeler's answer has none of them."""

    class Meta:
        model = Item
        fields = ["id", "external_id", "text", "raw_text", "kind", "turns", "meta", "split",
                  "imported_label", "gold_label", "final_label", "annotation_count",
                  "required_labels", "created_at"]
        read_only_fields = fields
        extra_kwargs = {name: {"required": False, "help_text": "managers only"}
                        for name in MANAGER_ONLY_FIELDS}

    def get_fields(self):
        fields = super().get_fields()
        if not self.context.get("manager", True):
            for name in MANAGER_ONLY_FIELDS:
                fields.pop(name, None)
        return fields


class AnnotationSerializer(serializers.Serializer):
    labeler = serializers.CharField(source="labeler.username", allow_null=True)
    label = serializers.CharField()
    created_at = serializers.DateTimeField()


class ItemPredictionSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(source="model_version.version")
    label = serializers.CharField()
    probabilities = serializers.SerializerMethodField(
        help_text="probability per label name, as in the prediction API")
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.DictField(child=serializers.FloatField()))
    def get_probabilities(self, prediction) -> dict[str, float]:
        """Stored as a list in the version's label order."""
        names = prediction.model_version.label_names or []
        return {str(name): float(p) for name, p in zip(names, prediction.probabilities,
                                                       strict=False)}


class ZeroShotSuggestionSerializer(serializers.Serializer):
    label = serializers.CharField()
    confidence = serializers.FloatField()
    source = serializers.CharField(help_text='always "zero_shot"')
    provenance = serializers.CharField(help_text="what made it: the label descriptions, not a "
                                       "trained model")


class ItemDetailSerializer(ItemSerializer):
    annotations = AnnotationSerializer(many=True, source="annotations_list")
    latest_prediction = ItemPredictionSerializer(allow_null=True, source="latest")
    zero_shot = ZeroShotSuggestionSerializer(
        allow_null=True, source="zero_shot_guess",
        help_text="while no version is active: the label the item's embedding is nearest to "
        "by the label descriptions (docs/zero_shot.md); null once a version is active, for "
        "gold, or before the item is embedded")

    class Meta(ItemSerializer.Meta):
        fields = [*ItemSerializer.Meta.fields, "annotations", "latest_prediction", "zero_shot"]


class ItemPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ItemSerializer(many=True)


def item_filters(params) -> dict:
    """The list's filters as items_filtered arguments; ValidationError ({"detail": ...}) if
    malformed."""
    errors, filters = {}, {}
    split = params.get("split")
    if split:
        if split not in Item.Split.values:
            errors["split"] = f"one of {', '.join(Item.Split.values)}"
        filters["split"] = split
    labeled = params.get("labeled")
    if labeled:
        if labeled.lower() not in ("true", "false"):
            errors["labeled"] = "true or false"
        filters["labeled"] = labeled.lower() == "true"
    kind = params.get("kind")
    if kind:
        if kind not in TextKind.values:
            errors["kind"] = f"one of {', '.join(TextKind.values)}"
        filters["kind"] = kind
    for name in ("created_after", "created_before"):
        value = params.get(name)
        if value:
            try:
                moment = parse_datetime(value) or _day(value)
            except ValueError:  # well-formed but impossible, e.g. 2025-02-30
                moment = None
            if moment is None:
                errors[name] = "an ISO 8601 date or date-time, e.g. 2025-03-01T12:00:00Z"
            elif timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            filters[name] = moment
    meta = {}
    for name, value in params.items():
        if name.startswith("meta__"):
            key = name.removeprefix("meta__")
            if not key or "__" in key or not set(key) <= META_KEY_CHARS:
                errors[name] = "meta__<field>: letters, digits, - and single _ only"
            meta[key] = value
    filters["meta"] = meta
    _raise_if(errors)
    return filters


def item_search(params) -> dict:
    """The list's search parameters as items_search arguments (meta: item_filters); the
    selector checks the rest. Without `sort`: relevance with `q`, else oldest first (the
    list's order before search existed)."""
    errors = {}
    search = {"query": params.get("q", ""), "sort": params.get("sort") or (
        "relevance" if params.get("q") else "oldest")}
    for name in ("label", "predicted_label", "labeler"):
        search[name] = params.get(name, "")
    for name in ("confidence_min", "confidence_max"):
        value = params.get(name)
        if value:
            try:
                search[name] = float(value)
            except ValueError:
                errors[name] = "a number from 0 to 1"
    _raise_if(errors)
    return search


def _raise_if(errors: dict[str, str]) -> None:
    """One error shape ({"detail": ...}, api/access.error) naming every malformed parameter."""
    if errors:
        raise serializers.ValidationError({"detail": "; ".join(
            f"{name}: {message}" for name, message in errors.items())})


def _day(value: str) -> datetime | None:
    day = parse_date(value) if len(value) == 10 else None
    return datetime.combine(day, time.min) if day else None

