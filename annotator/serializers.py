"""Request and response shapes of the prediction API (validation lives here)."""

from django.conf import settings
from rest_framework import serializers

from annotator.cleaning import clean_text


class TextField(serializers.CharField):
    """A JSON string, nothing else: numbers, booleans and null are refused, not converted."""

    default_error_messages = {"invalid": "must be a string, not {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            kind = "null" if data is None else type(data).__name__
            self.fail("invalid", kind=kind)
        return data


class PredictRequestSerializer(serializers.Serializer):
    texts = serializers.ListField(
        child=TextField(trim_whitespace=False, max_length=settings.IMPORT_MAX_TEXT_CHARS),
        allow_empty=False,
        min_length=1,
        max_length=settings.API_MAX_TEXTS,
        help_text=(
            f"1 to {settings.API_MAX_TEXTS} texts (ANNOTATOR_API_MAX_TEXTS). Each is cleaned as "
            "imports are (HTML stripped, entities unescaped, NFKC, whitespace collapsed); it must "
            f"not be empty afterwards nor longer than {settings.IMPORT_MAX_TEXT_CHARS:,} "
            "characters (ANNOTATOR_MAX_TEXT_CHARS)."
        ),
    )

    def validate_texts(self, texts: list[str]) -> list[str]:
        limit, max_chars = settings.API_MAX_TEXTS, settings.IMPORT_MAX_TEXT_CHARS
        if len(texts) > limit:
            raise serializers.ValidationError(
                f"too many texts: {len(texts)}, the limit is {limit}."
            )
        cleaned, errors = [], []
        for i, raw in enumerate(texts):
            text = clean_text(raw)
            if not text:
                errors.append(f"texts[{i}] is empty after cleaning.")
            elif len(text) > max_chars:
                errors.append(f"texts[{i}] is {len(text):,} characters after cleaning, over the "
                              f"limit of {max_chars:,}.")
            cleaned.append(text)
        if errors:
            raise serializers.ValidationError(errors[:10])
        return cleaned


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the most probable label")
    probabilities = serializers.DictField(
        child=serializers.FloatField(), help_text="label -> probability; they sum to 1"
    )


class PredictResponseSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(help_text="the version number that answered")
    predictions = PredictionSerializer(many=True, help_text="one per text, in request order")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
