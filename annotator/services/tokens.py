"""API tokens: made here, shown once, stored hashed (models.ApiToken)."""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from annotator.models import ApiToken


def api_token_create(*, user, replace: bool = False) -> str:
    """A new API key for `user`, returned once: only its SHA-256 is stored. A user has one
    key; `replace` revokes the old one, else a user who has one raises ValidationError."""
    key = secrets.token_hex(20)  # 40 hex characters, as DRF's keys were
    with transaction.atomic():
        if replace:
            ApiToken.objects.filter(user=user).delete()
        elif ApiToken.objects.filter(user=user).exists():
            raise ValidationError(f"{user.username} has an API token already (it was shown "
                                  "once, when it was made).")
        ApiToken.objects.create(user=user, prefix=key[:8], digest=ApiToken.digest_of(key))
    return key
