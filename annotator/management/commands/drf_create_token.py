"""manage.py drf_create_token <username> [-r]: an API token, printed once and stored hashed.

Replaces rest_framework.authtoken's command of the same name (its table kept the keys in
clear); the same arguments and output line."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.services.tokens import api_token_create


class Command(BaseCommand):
    help = "Create a user's API token; it is printed once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("-r", "--reset", action="store_true", dest="reset_token",
                            help="replace the user's token (the old one stops working)")

    def handle(self, *args, username: str, reset_token: bool, **options):
        users = get_user_model()._default_manager
        try:
            user = users.get_by_natural_key(username)
        except users.model.DoesNotExist:
            raise CommandError(f"Cannot create the token: user {username} does not exist") from None
        try:
            key = api_token_create(user=user, replace=reset_token)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages) + " Run with -r to replace it; the "
                               "old one stops working.") from None
        self.stdout.write(f"Generated token {key} for user {username}")
        self.stdout.write("It is shown only now: keep it somewhere safe.")
