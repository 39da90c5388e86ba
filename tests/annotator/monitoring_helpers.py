"""Items, predictions and project admins for the monitoring tests."""

import hashlib

from django.contrib.auth import get_user_model

from annotator.models import Item, Membership, Prediction

PASSWORD = "correct horse battery"


def add_items(project, texts, **meta) -> list[Item]:
    return [
        Item.objects.create(project=project, raw_text=text, text=text, meta=dict(meta),
                            content_hash=hashlib.sha256(f"{project.pk}{text}".encode()).hexdigest())
        for text in texts
    ]


_counter = iter(range(10**9))


def add_predicted(project, version, labels, **meta) -> list[Item]:
    """One new item per label, predicted by `version` with that label."""
    items = add_items(project, [f"review {next(_counter)}" for _ in labels], **meta)
    for item, label in zip(items, labels, strict=True):
        Prediction.objects.create(item=item, model_version=version, label=label,
                                  probabilities=[0.2, 0.3, 0.5], uncertainty=0.5)
    return items


def project_admin(project, username="pam"):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user
