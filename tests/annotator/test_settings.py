from django.conf import settings
from django.db import connection


def test_debug_is_off_unless_asked_for():
    assert settings.DEBUG is False


def test_artifacts_go_through_a_named_storage():
    assert "artifacts" in settings.STORAGES


def test_sqlite_uses_wal_and_immediate_transactions(db):
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
    assert mode == "wal"
    assert settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_healthz_answers(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
