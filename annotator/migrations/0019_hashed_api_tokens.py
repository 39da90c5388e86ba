"""API tokens stored hashed (models.ApiToken). The keys of rest_framework.authtoken's table,
kept in clear, are moved over as their SHA-256 (clients keep their keys) and deleted there;
its table stays, empty (the app is no longer installed)."""

import hashlib
from datetime import UTC

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

CLEAR_TABLE = "authtoken_token"


def hash_clear_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if CLEAR_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("annotator", "ApiToken")
    table = schema_editor.quote_name(CLEAR_TABLE)
    columns = ", ".join(map(schema_editor.quote_name, ("key", "user_id", "created")))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table}")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        if isinstance(created, str):  # SQLite hands back text
            created = parse_datetime(created)
        if created is not None and timezone.is_naive(created):
            created = timezone.make_aware(created, UTC)
        token = ApiToken.objects.create(user_id=user_id, prefix=key[:8],
                                        digest=hashlib.sha256(key.encode()).hexdigest())
        if created is not None:
            ApiToken.objects.filter(pk=token.pk).update(created_at=created)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")


class Migration(migrations.Migration):

    dependencies = [
        ("annotator", "0018_vocabulary_check_garbled_share"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("prefix", models.CharField(max_length=8)),
                ("digest", models.CharField(editable=False, max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="api_token",
                                              to=settings.AUTH_USER_MODEL)),
            ],
            options={"verbose_name": "API token"},
        ),
        # the clear keys cannot come back: going back leaves the old table empty
        migrations.RunPython(hash_clear_tokens, migrations.RunPython.noop),
    ]
