"""API tokens are stored hashed (models.ApiToken): the key is shown once, when it is made (the
drf_create_token command, the admin), a copied database holds no live key, and the tokens of
rest_framework.authtoken's clear table are moved over by migration 0017 so clients keep
working."""

import hashlib
import importlib

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import ApiToken

PROJECTS = "/api/projects/"


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _made(capsys) -> str:
    out = capsys.readouterr().out
    return out.split("Generated token ", 1)[1].split()[0]


def _stored_text() -> str:
    """Everything the token table holds, as text: what a copy of the database would give."""
    return repr(list(ApiToken.objects.values_list()))


def test_drf_create_token_prints_a_key_that_works_and_stores_only_its_hash(labeler, capsys):
    call_command("drf_create_token", labeler.username)
    key = _made(capsys)
    assert len(key) == 40
    assert _client(key).get(PROJECTS).status_code == 200
    token = ApiToken.objects.get(user=labeler)
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8]
    assert key not in _stored_text()
    assert "authtoken_token" not in connection.introspection.table_names()


def test_the_stack_check_reads_the_key_out_of_the_commands_output(labeler, capsys):
    """docker/stack_check.sh takes the key from drf_create_token's output with awk: the
    second line ("It is shown only now: ...") once gave it a key with "shown" on a new line."""
    import re
    import subprocess
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / "docker" / "stack_check.sh").read_text()
    program = re.search(r"^TOKEN=\$\(.*drf_create_token admin \| awk '([^']+)'\)$", script,
                        re.MULTILINE).group(1)
    call_command("drf_create_token", labeler.username)
    output = capsys.readouterr().out
    key = subprocess.run(["awk", program], input=output, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert _client(key).get(PROJECTS).status_code == 200


def test_a_second_token_needs_reset_which_revokes_the_first(labeler, capsys):
    call_command("drf_create_token", labeler.username)
    first = _made(capsys)
    with pytest.raises(CommandError, match="has an API token already .* -r to replace it"):
        call_command("drf_create_token", labeler.username)
    assert _client(first).get(PROJECTS).status_code == 200
    call_command("drf_create_token", "-r", labeler.username)
    second = _made(capsys)
    assert second != first
    assert _client(first).get(PROJECTS).status_code == 401
    assert _client(second).get(PROJECTS).status_code == 200


def test_a_token_for_an_unknown_user_is_refused(db):
    with pytest.raises(CommandError, match="user nobody does not exist"):
        call_command("drf_create_token", "nobody")


@pytest.mark.parametrize("header", ["Token 0123456789abcdef0123456789abcdef01234567",
                                    "Token ", "Token a b"])
def test_an_unknown_or_malformed_token_gets_401(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(PROJECTS).status_code == 401


def test_the_stored_digest_is_no_key(labeler, capsys):
    """Sending what the table holds (a copied database) authenticates nobody."""
    call_command("drf_create_token", labeler.username)
    token = ApiToken.objects.get(user=labeler)
    assert _client(token.digest).get(PROJECTS).status_code == 401
    assert _client(token.digest[:40]).get(PROJECTS).status_code == 401


def test_an_inactive_users_token_gets_401(labeler, capsys):
    call_command("drf_create_token", labeler.username)
    key = _made(capsys)
    labeler.is_active = False
    labeler.save()
    assert _client(key).get(PROJECTS).status_code == 401


def test_the_admin_shows_a_new_key_once(admin_client, labeler):
    response = admin_client.post(reverse("admin:annotator_apitoken_add"), {"user": labeler.pk})
    assert response.status_code == 200
    page = response.content.decode()
    assert "not shown again" in page
    token = ApiToken.objects.get(user=labeler)
    key = next(word for word in page.replace('"', " ").split()
               if len(word) == 40 and hashlib.sha256(word.encode()).hexdigest() == token.digest)
    assert _client(key).get(PROJECTS).status_code == 200
    listed = admin_client.get(reverse("admin:annotator_apitoken_changelist")).content.decode()
    assert token.prefix in listed and key not in listed
    shown = admin_client.get(reverse("admin:annotator_apitoken_change", args=[token.pk]))
    assert key not in shown.content.decode()


def test_the_admin_refuses_a_second_token_for_a_user(admin_client, labeler):
    admin_client.post(reverse("admin:annotator_apitoken_add"), {"user": labeler.pk})
    response = admin_client.post(reverse("admin:annotator_apitoken_add"), {"user": labeler.pk})
    assert "already exists" in response.content.decode()
    assert ApiToken.objects.count() == 1


# --- migration 0017: the clear keys of rest_framework.authtoken ---------------------------

CLEAR_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"


@pytest.fixture
def clear_token_table(db):
    """rest_framework.authtoken's table as an older install has it, with one clear key."""
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE "authtoken_token" ("key" varchar(40) NOT NULL PRIMARY KEY, '
                       '"created" timestamp NOT NULL, "user_id" integer NOT NULL UNIQUE)')
    yield
    with connection.cursor() as cursor:
        cursor.execute('DROP TABLE IF EXISTS "authtoken_token"')


def test_migration_0019_hashes_the_clear_keys_and_clients_keep_working(labeler,
                                                                       clear_token_table):
    from django.apps import apps

    with connection.cursor() as cursor:
        cursor.execute('INSERT INTO "authtoken_token" ("key", "created", "user_id") '
                       "VALUES (%s, %s, %s)", [CLEAR_KEY, "2025-03-01 10:00:00", labeler.pk])
    migration = importlib.import_module("annotator.migrations.0019_hashed_api_tokens")
    # the function the migration runs (an editor outside its context: it only quotes names)
    migration.hash_clear_tokens(apps, connection.schema_editor())

    assert _client(CLEAR_KEY).get(PROJECTS).status_code == 200
    token = ApiToken.objects.get(user=labeler)
    assert (token.prefix, token.created_at.isoformat()) == ("9944b091", "2025-03-01T10:00:00+00:00")
    with connection.cursor() as cursor:
        cursor.execute('SELECT COUNT(*) FROM "authtoken_token"')
        assert cursor.fetchone() == (0,)  # no clear key left behind
    assert CLEAR_KEY not in _stored_text()
