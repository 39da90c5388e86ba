"""Request and response shapes of the prediction API (validation lives here)."""

from django.conf import settings
from rest_framework import serializers

from annotator.lib.cleaning import clean_text


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

    explain = serializers.BooleanField(
        default=False,
        help_text=(
            "Also say which words pushed each prediction (occlusion: the drop in the predicted "
            "label's probability without the word). One extra forward pass per word: at most "
            f"{settings.API_MAX_EXPLAIN_TEXTS} texts per request (ANNOTATOR_API_MAX_EXPLAIN_TEXTS)."
        ),
    )

    def validate(self, data: dict) -> dict:
        limit = settings.API_MAX_EXPLAIN_TEXTS
        if data.get("explain") and len(data["texts"]) > limit:
            raise serializers.ValidationError(
                {"explain": f"explanations for at most {limit} texts per request; "
                            f"this one has {len(data['texts'])}."})
        return data

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


class WordSerializer(serializers.Serializer):
    text = serializers.CharField()
    start = serializers.IntegerField(help_text="text[start:end] of the cleaned text")
    end = serializers.IntegerField()
    score = serializers.FloatField(
        help_text="how much the label's probability drops without this word; negative: the "
                  "word pushed away from the label")


class ExplanationSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the label explained (the predicted one)")
    text = serializers.CharField(help_text="the cleaned text the spans point into")
    truncated = serializers.BooleanField(help_text="words after the last one listed were not "
                                                   "scored (long text)")
    words = WordSerializer(many=True, help_text="every scored word, in text order")


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the most probable label")
    probabilities = serializers.DictField(
        child=serializers.FloatField(), help_text="label -> probability; they sum to 1"
    )
    explanation = ExplanationSerializer(required=False, help_text="only with explain=true")


class PredictResponseSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(help_text="the version number that answered")
    predictions = PredictionSerializer(many=True, help_text="one per text, in request order")
