"""Headless Chromium for the browser tests (Debian's /usr/bin/chromium, driven by Playwright).

The pages run under the site's Content-Security-Policy (no 'unsafe-eval'): give
page.wait_for_function a function, "() => ...", not a bare expression, which Playwright
evaluates with eval() in the page and the policy refuses."""

import functools
import shutil
import tempfile
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"
    ),
]


def closes_its_db_connection(test):
    """Inside Playwright's sync API the test body gets a DB connection of its own (another
    context); close it there, or PostgreSQL refuses to drop the test database."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        finally:
            connections.close_all()

    return wrapper


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,  # a throwaway --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1100, "height": 820},
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
