import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin user once (password from ADMIN_PASSWORD or generated into var/)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user '{username}' already exists.")
            return
        import os

        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username, email="", password=password)
        if not os.environ.get("ADMIN_PASSWORD"):
            path = settings.VAR_DIR / "admin_password"
            path.write_text(password + "\n")
            path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created admin '{username}' with password: {password}"))
