"""Labeled items for training tests."""

import hashlib

from annotator.models import Annotation, Item
from tests.trainer.tiny import tiny_dataset


def add_labeled_items(project, labeler, *, gold: int = 0) -> list[Item]:
    """The 24 tiny texts as pool items, each labeled once; `gold` extra gold items."""
    texts, labels = tiny_dataset()
    items = []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        item = Item.objects.create(
            project=project, raw_text=text, text=text, annotation_count=1,
            content_hash=hashlib.sha256(f"{project.id}{text}".encode()).hexdigest(),
            random_key=i / 100,
        )
        Annotation.objects.create(item=item, labeler=labeler, label=label)
        items.append(item)
    for i in range(gold):
        text = f"gold review number {i}"
        Item.objects.create(
            project=project, raw_text=text, text=text, split=Item.Split.GOLD,
            gold_label=labels[i % len(labels)],
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
        )
    return items
