"""Shapes of the search-by-meaning, near-duplicate groups and bulk-labeling API."""

from rest_framework import serializers

from annotator.api.serializers.projects import ItemSerializer
from annotator.models import BulkLabeling
from annotator.services.bulk_labeling import SKIP_REASONS


class SimilarItemSerializer(serializers.Serializer):
    similarity = serializers.FloatField(help_text="cosine similarity of the stored embeddings")
    item = ItemSerializer()


class SimilarPageSerializer(serializers.Serializer):
    results = SimilarItemSerializer(many=True)


class DuplicateGroupSerializer(serializers.Serializer):
    group = serializers.IntegerField(help_text="the group's id (its first item's id)")
    size = serializers.IntegerField()
    open = serializers.IntegerField(help_text="items of the group nobody labeled yet")
    text = serializers.CharField(help_text="the text of its first item")


class BulkLabelRequestSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)
    item_ids = serializers.ListField(child=serializers.IntegerField(min_value=1),
                                     allow_empty=False)
    query = serializers.DictField(
        required=False, default=dict,
        help_text="what chose the items, kept with the labels, e.g. "
                  '{"kind": "meaning", "q": "fits great"} or {"kind": "group", "group": 17}')


class BulkLabelingSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    undone = serializers.SerializerMethodField()

    class Meta:
        model = BulkLabeling
        fields = ["id", "user", "label", "query", "labeled", "skipped", "created_at", "undone",
                  "undone_at"]
        read_only_fields = fields

    def get_undone(self, bulk) -> bool:
        return bulk.undone_at is not None


class BulkLabelResultSerializer(serializers.Serializer):
    bulk = BulkLabelingSerializer()
    skipped_items = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="item ids left alone, by reason: " + "; ".join(
            f"{reason}: {why}" for reason, why in SKIP_REASONS.items()))


class BulkUndoSerializer(serializers.Serializer):
    removed = serializers.IntegerField(help_text="annotations removed (0: undone before)")
