"""Security: failed-login lockout, the admin's login, the API throttle, the API docs behind a
login without a CDN, and error answers that do not leak server details.

The counts live in the shared cache, emptied before every test (tests/conftest.py); that they
hold across several server processes is tests/annotator/test_shared_sessions.py's.
"""

import re
import time
import types

import pytest
from django.contrib.staticfiles import finders
from django.core.cache.backends import base, filebased
from django.core.files.storage import storages
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.api.predict import PredictThrottle
from annotator.lib import cache_backends
from annotator.ml import serving
from tests.annotator.serving_helpers import add_version, token_client
from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"


@pytest.fixture
def clock(monkeypatch, settings, tmp_path):
    """The embedded default's cache (files) with its clock in our hands (expiry set in base,
    checked in filebased and cache_backends), to step past a lockout window without waiting.
    Redis keeps its own clock; its counts expire by Redis's TTL."""
    settings.CACHES = {"default": {"BACKEND": "annotator.lib.cache_backends.SharedFileCache",
                                   "LOCATION": str(tmp_path / "cache")}}
    now = [time.time()]
    fake = types.SimpleNamespace(time=lambda: now[0])
    for module in (base, filebased, cache_backends):
        monkeypatch.setattr(module, "time", fake)
    return now


def _login(client, username, password, address="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password},
                       REMOTE_ADDR=address)


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- failed-login lockout -------------------------------------------------------------


def test_a_username_is_locked_out_after_the_failure_limit_even_with_the_right_password(
    client, labeler, settings
):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = _login(client, "lena", "wrong")
        assert response.status_code == 200
        assert "Wrong username or password." in response.content.decode()
    response = _login(client, "lena", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins for this user" in response.content.decode()
    assert not _logged_in(client)


def test_every_spelling_that_logs_in_as_the_user_counts_for_that_user(client, labeler, settings):
    """Authentication strips spaces and applies Unicode NFKC: " ｌｅｎａ " (full-width
    letters) logs in as "lena", so its failures are hers too (no way around the limit)."""
    settings.LOGIN_FAILURE_LIMIT = 3
    _login(client, " lena ", "wrong")
    _login(client, "\uff4c\uff45\uff4e\uff41", "wrong")  # ｌｅｎａ
    assert _login(client, "\uff4c\uff45\uff4e\uff41", PASSWORD).status_code == 302
    client.logout()
    _login(client, " lena ", "wrong")
    _login(client, "\uff4c\uff45\uff4e\uff41", "wrong")
    _login(client, "lena", "wrong")
    assert _login(client, "\uff4c\uff45\uff4e\uff41", PASSWORD).status_code == 429
    assert _login(client, "lena", PASSWORD).status_code == 429


def test_another_account_name_counts_for_itself(client, labeler, settings):
    """Usernames are case-sensitive ("Lena" cannot log in as "lena"), so guesses at "Lena"
    do not lock "lena" out."""
    settings.LOGIN_FAILURE_LIMIT = 2
    _login(client, "Lena", "wrong")
    _login(client, "LENA", "wrong")
    _login(client, "Lena", "wrong")
    assert _login(client, "lena", PASSWORD).status_code == 302


def test_the_lockout_is_per_username_and_address(client, labeler, admin_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    _login(client, "lena", "wrong")
    _login(client, "lena", "wrong")
    assert _login(client, "boss", PASSWORD).status_code == 302  # another user, same address
    client.logout()
    assert _login(client, "lena", PASSWORD, address="10.0.0.2").status_code == 302
    assert _logged_in(client)


def test_a_successful_login_clears_the_failures(client, labeler, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    _login(client, "lena", "wrong")
    _login(client, "lena", "wrong")
    assert _login(client, "lena", PASSWORD).status_code == 302
    client.logout()
    _login(client, "lena", "wrong")
    _login(client, "lena", "wrong")
    assert _login(client, "lena", PASSWORD).status_code == 302


def test_the_lockout_ends_a_window_after_the_first_failure(client, labeler, settings, clock):
    settings.LOGIN_FAILURE_LIMIT = 2
    settings.LOGIN_LOCKOUT_SECONDS = 900
    _login(client, "lena", "wrong")
    clock[0] += 600
    _login(client, "lena", "wrong")  # a later failure does not extend the window
    assert _login(client, "lena", PASSWORD).status_code == 429
    clock[0] += 301
    assert _login(client, "lena", PASSWORD).status_code == 302


# --- the admin's own login --------------------------------------------------------------


def test_the_admin_sends_people_to_the_login_with_the_lockout(client, db):
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1] == (f"{LOGIN}?next=%2Fadmin%2F", 302)
    assert response.templates[0].name == "registration/login.html"


def test_credentials_posted_to_the_admin_login_are_not_checked(client, admin_user):
    response = client.post("/admin/login/?next=/admin/",
                           {"username": "boss", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == f"{LOGIN}?next=/admin/"
    assert not _logged_in(client)


# --- prediction throttle ------------------------------------------------------------------


def _predict(client, project):
    # an empty list is refused (400) before any model is needed; throttling comes first
    return client.post(reverse("api_predict", args=[project.id]), {"texts": []}, format="json")


def test_predict_answers_429_with_retry_after_once_a_user_is_over_the_rate(
    project, labeler, admin_user, monkeypatch
):
    # DRF copies DEFAULT_THROTTLE_RATES into the class at import: set the rate there
    monkeypatch.setattr(PredictThrottle, "THROTTLE_RATES", {"predict": "2/minute"})
    client = token_client(labeler)
    assert [_predict(client, project).status_code for _ in range(2)] == [400, 400]
    response = _predict(client, project)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert _predict(token_client(admin_user), project).status_code == 400  # per user


def test_the_predict_rate_comes_from_the_settings(settings):
    assert PredictThrottle().rate == settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["predict"]


# --- API schema and docs -----------------------------------------------------------------


def test_the_schema_needs_credentials(labeler):
    assert APIClient().get("/api/schema/").status_code == 401
    assert token_client(labeler).get("/api/schema/").status_code == 200


def test_the_docs_page_sends_anonymous_users_to_log_in(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/api/docs/"


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files(labeler_client, settings):
    page = labeler_client.get("/api/docs/").content.decode()
    assert "://" not in page  # no CDN, no validator badge: nothing outside this site
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assets.remove("/api/docs/?script=")  # the start script, from the page's own view (CSP)
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL), asset
        # shipped by drf-spectacular-sidecar: collectstatic and WhiteNoise serve it offline
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset


# --- error answers -----------------------------------------------------------------------


@pytest.fixture
def fresh_models():
    serving.clear()
    yield
    serving.clear()


def test_a_model_that_cannot_load_gets_503_without_the_cause(
    project, labeler, fresh_models, caplog
):
    version = add_version(project, 1, active=True, files=False)  # an empty folder
    response = token_client(labeler).post(reverse("api_predict", args=[project.id]),
                                          {"texts": ["fine"]}, format="json")
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "the active model version (version 1) cannot be loaded; "
        "an admin finds the error in the server log"
    )
    folder = storages["artifacts"].path(version.artifact_path)
    assert any(record.exc_info for record in caplog.records)  # the cause went to the log
    assert folder not in response.content.decode()
