"""Sessions, the login lockout and the one-time invitation link behind several real server
processes, as `bin/up` and the container stack serve them.

Three gunicorn processes on three ports share the test database and the configured shared
cache (Redis where the broker is Redis, files in ANNOTATOR_VAR_DIR otherwise); a browser-like
client sends its requests to one process or another. With a cache of each process's own
(Django's default, in memory) a logged-out session cookie went on working in the processes
that had it cached, a lockout counted per process, and the invitation link showed in the
process that had stored it only.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection

from annotator.models import Membership
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
SERVERS = 3
FAILURE_LIMIT = 3
LOGIN = "/accounts/login/"
FULL_WIDTH_LENA = "\uff4c\uff45\uff4e\uff41"  # ｌｅｎａ: logs in as "lena" (Unicode NFKC)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server {url} exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):  # not listening, or loading
            if requests.get(f"{url}/healthz", timeout=30).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"server {url} did not answer: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
    """Base URLs of three gunicorn processes (one worker each) on the test database."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=database_url,
               LOGIN_FAILURE_LIMIT=str(FAILURE_LIMIT), PYTHONPATH=str(ROOT))
    logs = tmp_path_factory.mktemp("servers")
    started = []
    for number in range(SERVERS):
        port, log = _free_port(), logs / f"server-{number}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "annotator.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
        started.append((f"http://127.0.0.1:{port}", proc, log))
    try:
        for url, proc, log in started:
            _wait_until_up(url, proc, log)
        yield [url for url, _, _ in started]
    finally:
        for _, proc, _ in started:
            proc.terminate()
        for _, proc, _ in started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _login(browser: requests.Session, server: str, username: str, password: str):
    browser.get(f"{server}{LOGIN}")  # the CSRF cookie
    return browser.post(f"{server}{LOGIN}", data={"username": username, "password": password},
                        headers={"X-CSRFToken": browser.cookies["csrftoken"]},
                        allow_redirects=False)


def _post(browser: requests.Session, url: str, data: dict | None = None):
    return browser.post(url, data=data or {}, allow_redirects=False,
                        headers={"X-CSRFToken": browser.cookies["csrftoken"]})


def _logged_in(response) -> bool:
    return response.status_code == 200


def test_a_session_cookie_replayed_after_logout_is_refused_by_every_process(servers, admin_user):
    browser = requests.Session()
    assert _login(browser, servers[0], "boss", PASSWORD).status_code == 302
    session_id = browser.cookies["sessionid"]
    for server in servers:  # every process has read (and may keep) the session
        assert _logged_in(browser.get(f"{server}/", allow_redirects=False))

    assert _post(browser, f"{servers[1]}/accounts/logout/").status_code == 302

    for server in servers * 3:
        replay = requests.get(f"{server}/", cookies={"sessionid": session_id},
                              allow_redirects=False)
        assert replay.status_code == 302, f"{server} still accepts the logged-out session"
        assert replay.headers["Location"].startswith(LOGIN)


def test_failed_logins_spread_over_processes_lock_the_account_at_the_limit(servers, labeler):
    # three spellings that all log in as "lena", each to another process
    for server, spelling in zip(servers, ["lena", FULL_WIDTH_LENA, " lena "], strict=True):
        response = _login(requests.Session(), server, spelling, "wrong")
        assert response.status_code == 200, "refused before the limit"
    for server in servers:
        response = _login(requests.Session(), server, "lena", PASSWORD)
        assert response.status_code == 429, f"{server} let lena in past the limit"


def test_a_successful_login_in_one_process_clears_the_failures_in_all(servers, labeler):
    for server in servers[:2]:
        _login(requests.Session(), server, "lena", "wrong")
    assert _login(requests.Session(), servers[2], "lena", PASSWORD).status_code == 302
    for server in servers[:2]:  # two more: four in all, but two since the last success
        _login(requests.Session(), server, "lena", "wrong")
    assert _login(requests.Session(), servers[0], "lena", PASSWORD).status_code == 302


def test_the_invitation_link_shows_exactly_once_across_processes(servers, project, lead):
    browser = requests.Session()
    assert _login(browser, servers[0], "tess", PASSWORD).status_code == 302
    people = f"/projects/{project.pk}/people/"
    for server in servers:  # every process has read the session before the invitation
        assert browser.get(f"{server}{people}").status_code == 200

    invite = _post(browser, f"{servers[0]}/projects/{project.pk}/people/invite",
                   {"username": "newbie", "role": Membership.Role.LABELER})
    assert invite.status_code == 302

    shown = []
    for server in servers[1:] + servers + servers:
        page = browser.get(f"{server}{people}").text
        shown.append(len(re.findall(r'class="invitation-link"[^>]*/invite/', page)))
    assert shown == [1] + [0] * (len(shown) - 1)  # on the next people page, and never again
    assert get_user_model().objects.filter(username="newbie").exists()
