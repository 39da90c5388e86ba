"""Settings: secure defaults read from the environment, checked in a fresh process each.

The test process runs tests/settings.py with pytest-django's overrides, so what production
settings do with an environment is asked of a subprocess that imports annotator.settings
with exactly that environment (and no DATABASE_URL: SQLite in a temporary folder).
"""

import argparse
import importlib.util
import os
import random
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from annotator.settings import SECRET_KEY_MIN_BITS, _secret_key_problem, secret_key_bits

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = secrets.token_urlsafe(50)


def _run(tmp_path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)),
             "ANNOTATOR_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "annotator.settings",
             "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120)


def _setting(tmp_path, expression: str, **env: str) -> str:
    """repr() of an expression over the production settings module, imported with env."""
    result = _run(tmp_path, ["-c", f"from annotator import settings as s; print(repr({expression}))"],
                  **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- secret key ------------------------------------------------------------------------


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    result = _run(tmp_path, ["-c", "import annotator.settings"])
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is required when DEBUG is off" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # says how to make one


@pytest.mark.parametrize("key", [
    "change-me", "changeme", "CHANGE_ME_BEFORE_GOING_LIVE", "secret", "dev-only-insecure-key",
    "django-insecure-" + "k3y" * 15, "x" * 60, "short-key-1", "abcdefghijklmnop",
    "abcdefghijklmnopqrstuvwxyz" * 2,
])
def test_production_settings_refuse_a_placeholder_or_weak_secret_key(tmp_path, key):
    result = _run(tmp_path, ["-c", "import annotator.settings"], SECRET_KEY=key)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is" in result.stderr


def test_a_short_key_is_refused_with_how_to_make_a_good_one(tmp_path):
    result = _run(tmp_path, ["-c", "import annotator.settings"], SECRET_KEY="abcdefghijklmnop")
    assert "SECRET_KEY is too short: 16 characters, it needs 50 or more" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr and "bin/up" in result.stderr


@pytest.mark.parametrize("key", [
    "abcdefghijklmnopqrstuvwxyz" * 2,                 # a sequence, twice
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",  # three sequences
    "0123456789" * 6,
    "k3y" * 20,                                       # a repeated block
    "qwertyuiopasdfghjklzxcvbnm" * 2,                 # a keyboard row, twice
    "aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStTuUvVwWxXyYzZ",  # two interleaved sequences
    "0a1b2c3d4e5f6g7h8i9j" * 3,
    "correct horse battery staple correct horse battery staple",
    "=" * 49 + "x",
])
def test_a_long_key_of_repeats_or_sequences_is_refused_as_predictable(key):
    assert len(key) >= 50
    assert _secret_key_problem(key).startswith("SECRET_KEY is too predictable")


@pytest.mark.parametrize("alphabet, length", [
    (string.ascii_letters + string.digits + "-_", 67),            # secrets.token_urlsafe(50)
    ("0123456789abcdef", 64),                                     # secrets.token_hex(32)
    ("abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)", 50),   # Django's startproject
    (string.ascii_letters + string.digits + "+/", 64),            # openssl rand -base64 48
])
def test_random_keys_as_the_usual_tools_make_them_pass(alphabet, length):
    draw = random.Random(f"{alphabet}{length}")  # the same 2,000 keys every run
    refused = [key for key in ("".join(draw.choices(alphabet, k=length)) for _ in range(2000))
               if _secret_key_problem(key)]
    assert refused == []
    assert not _secret_key_problem(secrets.token_urlsafe(50))
    assert secret_key_bits(secrets.token_urlsafe(50)) > 2 * SECRET_KEY_MIN_BITS


def test_development_runs_with_its_own_key_and_production_with_a_random_one(tmp_path):
    assert _setting(tmp_path, "s.SECRET_KEY", DEBUG="1") == repr("dev-only-insecure-key")
    assert _setting(tmp_path, "s.DEBUG", SECRET_KEY=STRONG_KEY) == "False"  # off unless asked


def test_without_secret_key_it_says_where_the_key_is_expected(tmp_path):
    result = _run(tmp_path, ["-c", "import annotator.settings"])
    assert f"or write one to {tmp_path / 'secret_key'}" in result.stderr


def test_manage_py_reads_the_key_bin_up_wrote(tmp_path):
    """bin/up writes VAR_DIR/secret_key: manage.py from a shell without SECRET_KEY uses it."""
    (tmp_path / "secret_key").write_text(STRONG_KEY + "\n")
    assert _setting(tmp_path, "s.SECRET_KEY") == repr(STRONG_KEY)
    result = _run(tmp_path, ["manage.py", "migrate", "--noinput", "-v", "0"])
    assert result.returncode == 0, result.stderr
    result = _run(tmp_path, ["manage.py", "shell", "-c",
                             "from django.contrib.auth.models import User; "
                             "User.objects.create_user('admin')"])
    assert result.returncode == 0, result.stderr
    result = _run(tmp_path, ["manage.py", "drf_create_token", "admin"])
    assert result.returncode == 0, result.stderr
    assert "Generated token" in result.stdout


def test_the_environment_wins_over_the_key_file(tmp_path):
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(50))
    assert _setting(tmp_path, "s.SECRET_KEY", SECRET_KEY=STRONG_KEY) == repr(STRONG_KEY)


def test_a_weak_key_in_the_file_is_refused_and_the_file_named(tmp_path):
    (tmp_path / "secret_key").write_text("change-me")
    result = _run(tmp_path, ["-c", "import annotator.settings"])
    assert result.returncode != 0
    assert "SECRET_KEY is a placeholder" in result.stderr
    assert f"read from {tmp_path / 'secret_key'}" in result.stderr


# --- HTTPS -----------------------------------------------------------------------------


def test_plain_http_by_default(tmp_path):
    assert _setting(tmp_path, "(s.SESSION_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
                    "s.SECURE_HSTS_SECONDS)", SECRET_KEY=STRONG_KEY) == "(False, False, 0)"


def test_https_turns_on_secure_cookies_redirects_hsts_and_the_proxy_header(tmp_path):
    values = _setting(
        tmp_path,
        "(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_PROXY_SSL_HEADER)",
        SECRET_KEY=STRONG_KEY, HTTPS="1", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    assert values == "(True, True, True, 31536000, True, ('HTTP_X_FORWARDED_PROTO', 'https'))"


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _run(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                  SECRET_KEY=STRONG_KEY, HTTPS="1", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
                  ALLOWED_HOSTS="annotator.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@override_settings(SECURE_SSL_REDIRECT=True)
def test_https_redirects_everything_but_the_health_check(client, db):
    assert client.get("/healthz").status_code == 200  # container health checks speak HTTP
    response = client.get("/accounts/login/")
    assert response.status_code == 301 and response["Location"].startswith("https://")


# --- throttles, cache ---------------------------------------------------------------------


def test_the_api_rate_and_the_cache_come_from_the_environment(tmp_path):
    assert _setting(tmp_path, 's.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["predict"]',
                    SECRET_KEY=STRONG_KEY, ANNOTATOR_API_RATE="5/second") == "'5/second'"
    assert _setting(tmp_path, 's.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["predict"]',
                    SECRET_KEY=STRONG_KEY, ANNOTATOR_API_RATE="") == "None"  # no limit
    assert "RedisCache" in _setting(tmp_path, 's.CACHES["default"]["BACKEND"]',
                                    SECRET_KEY=STRONG_KEY, CACHE_URL="redis://redis:6379/2")


def test_server_timing_is_off_unless_asked(tmp_path):
    assert _setting(tmp_path, "s.SERVER_TIMING", SECRET_KEY=STRONG_KEY) == "False"
    assert _setting(tmp_path, "s.SERVER_TIMING", SECRET_KEY=STRONG_KEY,
                    ANNOTATOR_SERVER_TIMING="1") == "True"


def test_the_labeling_load_benchmark_starts_its_server_with_server_timing(tmp_path):
    spec = importlib.util.spec_from_file_location("labeling_load",
                                                  ROOT / "bench" / "labeling_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(database_url=f"sqlite:///{tmp_path / 'bench.sqlite3'}")
    server_env = bench.server_env(args, str(tmp_path))
    assert _setting(tmp_path, "s.SERVER_TIMING", **server_env) == "True"


# --- the rest ----------------------------------------------------------------------------


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
