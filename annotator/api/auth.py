"""Token authentication against hashed keys: DRF's own TokenAuthentication compares the
clear keys its table stores; this one looks up the SHA-256 of the key sent."""

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from annotator.models import ApiToken


class HashedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, checked against models.ApiToken."""

    def authenticate_credentials(self, key: str):
        token = (ApiToken.objects.select_related("user")
                 .filter(digest=ApiToken.digest_of(key)).first())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token
