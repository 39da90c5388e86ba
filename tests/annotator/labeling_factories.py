"""Small item factories shared by the labeling tests."""

import hashlib
import random

from annotator.models import Item, Project


def make_item(project: Project, text: str, **fields) -> Item:
    fields.setdefault("random_key", random.random())
    return Item.objects.create(
        project=project,
        raw_text=text,
        text=text,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        **fields,
    )


def make_items(project: Project, n: int, prefix: str = "item", **fields) -> list[Item]:
    rng = random.Random(n)
    items = [
        Item(
            project=project,
            raw_text=f"{prefix} {i}",
            text=f"{prefix} {i}",
            content_hash=hashlib.sha256(f"{project.pk}:{prefix} {i}".encode()).hexdigest(),
            random_key=rng.random(),
            **fields,
        )
        for i in range(n)
    ]
    return Item.objects.bulk_create(items)


def label_as(labeler, item, label, **kwargs):
    """Lease `item` to `labeler` (as if the labeling page served it) and submit `label`."""
    from annotator.models import Item
    from annotator.services.labeling import annotation_submit, item_lease_claim

    served = item_lease_claim(labeler=labeler, candidates=Item.objects.filter(pk=item.pk),
                              lease_seconds=600)
    assert served is not None, "the item could not be leased"
    return annotation_submit(labeler=labeler, item=served, label=label, **kwargs)
