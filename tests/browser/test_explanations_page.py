"""Headless Chromium: `w` on the labeling page tints the words that pushed the suggestion,
and the admin's item review shows them without a key."""

import pytest
from django.contrib.auth import get_user_model

from annotator.ml import serving
from annotator.models import Membership
from tests.annotator.labeling_factories import make_item
from tests.annotator.serving_helpers import add_version
from tests.browser.conftest import ARTIFACTS, closes_its_db_connection, needs_chromium
from tests.conftest import PASSWORD

pytestmark = needs_chromium
REVIEW = "Great fit <b>but</b> the zipper broke 😞 after a week, 质量差"


def _login(page, url: str, username: str, target: str) -> None:
    page.goto(f"{url}/accounts/login/?next={target}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")


@pytest.mark.django_db(transaction=True)
@closes_its_db_connection
def test_w_shows_and_hides_why_the_model_suggests_its_label(live_server, browser_page,
                                                          monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Project

    serving.clear()
    project = Project.objects.create(name="Bags", show_suggestions=True)
    user = get_user_model().objects.create_user("lena", password=PASSWORD)
    Membership.objects.create(project=project, user=user)
    item = make_item(project, REVIEW)
    add_version(project, 1, active=True)
    monkeypatch.setattr("annotator.selectors.queue.suggestion_for", lambda item: ("negative", 0.7))

    page = browser_page
    _login(page, live_server.url, "lena", f"/projects/{project.pk}/label/")
    page.wait_for_selector("#item-body .text")
    assert page.is_enabled("[data-action=why]")
    page.keyboard.press("w")
    page.wait_for_selector("#item-body mark")
    assert page.inner_text("#item-body .text") == REVIEW  # same text, markup shown as text
    assert page.inner_text("#item-why").startswith("Model v1 reads ")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "label_explanation.png"), full_page=True)
    page.keyboard.press("w")
    assert page.locator("#item-body mark").count() == 0 and page.is_hidden("#item-why")

    admin = get_user_model().objects.create_user("boss", password=PASSWORD, is_staff=True)
    assert admin.is_staff
    page.context.clear_cookies()
    _login(page, live_server.url, "boss", f"/projects/{project.pk}/items/{item.pk}/review")
    page.wait_for_selector("#review-text mark")
    assert page.inner_text("#review-text") == REVIEW
    assert "pushed by" in page.inner_text("#review-explanation") or \
        "against" in page.inner_text("#review-explanation")
    page.screenshot(path=str(ARTIFACTS / "item_review.png"), full_page=True)
    serving.clear()


@pytest.mark.django_db(transaction=True)
@closes_its_db_connection
def test_w_says_why_there_is_nothing_to_explain(live_server, browser_page, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Project

    project = Project.objects.create(name="Socks")  # suggestions off: the default
    user = get_user_model().objects.create_user("lena", password=PASSWORD)
    Membership.objects.create(project=project, user=user)
    make_item(project, REVIEW)

    page = browser_page
    _login(page, live_server.url, "lena", f"/projects/{project.pk}/label/")
    page.wait_for_selector("#item-body .text")
    page.keyboard.press("w")
    page.wait_for_selector("#item-why:not([hidden])")
    assert "suggestions are off" in page.inner_text("#item-why")
    page.keyboard.press("w")
    assert page.is_hidden("#item-why")
