"""Headless Chromium labels three items with the keyboard only."""

import pytest
from django.contrib.auth import get_user_model

from annotator.models import Annotation, Membership
from tests.annotator.labeling_factories import make_item
from tests.browser.conftest import ARTIFACTS, closes_its_db_connection, needs_chromium
from tests.conftest import PASSWORD

XSS = "<script>alert(1)</script> The sole came off after two days."

pytestmark = needs_chromium
_closes_its_db_connection = closes_its_db_connection


@pytest.mark.django_db(transaction=True)
@_closes_its_db_connection
def test_labeler_labels_three_items_with_the_keyboard(live_server, browser_page, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls below are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Project

    project = Project.objects.create(name="Shoes")
    user = get_user_model().objects.create_user("lena", password=PASSWORD)
    Membership.objects.create(project=project, user=user)
    make_item(
        project, XSS, priority=3.0, meta={"product": "Trail runner", "source": "shop reviews"}
    )
    make_item(
        project,
        "customer: Where is my parcel? agent: It left the warehouse today.",
        kind="dialogue",
        priority=2.0,
        turns=[
            {"speaker": "customer", "text": "Where is my parcel? It is a week late."},
            {"speaker": "agent", "text": "Sorry about that! It left the warehouse today."},
        ],
        meta={"channel": "chat"},
    )
    make_item(project, "waterproof hiking boots", kind="query", priority=1.0)
    make_item(project, "Spare item nobody reaches.", priority=0.5)

    page = browser_page
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}/accounts/login/?next=/projects/{project.pk}/label/")
    page.fill("input[name=username]", "lena")
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#item-body .text")

    # the review's markup is shown as text, never run
    assert XSS in page.inner_text("#item-body")
    assert "Trail runner" in page.inner_text("#item-meta")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "label_review.png"), full_page=True)

    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("Escape")
    assert not page.is_visible("#help")

    page.keyboard.press("1")  # negative
    page.wait_for_function("() => document.getElementById('mine-today').textContent === '1'")
    assert page.locator(".turn").count() == 2  # the dialogue, turn by turn
    assert page.inner_text(".turn[data-speaker=customer] .speaker").lower() == "customer"
    page.screenshot(path=str(ARTIFACTS / "label_dialogue.png"), full_page=True)

    page.keyboard.press("2")  # neutral
    page.wait_for_function("() => document.getElementById('mine-today').textContent === '2'")
    assert page.inner_text("#item-body") == "waterproof hiking boots"
    page.set_viewport_size({"width": 375, "height": 740})
    page.screenshot(path=str(ARTIFACTS / "label_query_phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 820})

    page.keyboard.press("Backspace")  # go back and change the dialogue's label
    page.wait_for_selector(".badge.changing")
    page.screenshot(path=str(ARTIFACTS / "label_change_last.png"), full_page=True)
    page.keyboard.press("3")
    page.wait_for_function(
        "() => document.querySelector('#item-body').textContent === 'waterproof hiking boots'"
    )
    page.keyboard.press("3")  # positive
    page.wait_for_function("() => document.getElementById('mine-today').textContent === '3'")
    page.screenshot(path=str(ARTIFACTS / "label_keyboard.png"), full_page=True)

    labels = dict(Annotation.objects.filter(labeler=user).values_list("item__text", "label"))
    assert len(labels) == 3
    assert labels[XSS] == "negative"
    assert labels["waterproof hiking boots"] == "positive"
    assert "positive" in labels.values() and list(labels.values()).count("positive") == 2
    assert all(a.seconds_spent is not None for a in Annotation.objects.all())
    assert dialogs == []


@pytest.mark.django_db(transaction=True)
@_closes_its_db_connection
def test_admin_adjudicates_a_disagreement(live_server, browser_page, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Item, Project
    from tests.annotator.labeling_factories import label_as

    project = Project.objects.create(name="Phones", overlap_percent=20, overlap_labelers=2)
    admin = get_user_model().objects.create_user("boss", password=PASSWORD, is_staff=True)
    people = [get_user_model().objects.create_user(name) for name in ("ana", "ben")]
    for user in people:
        Membership.objects.create(project=project, user=user)
    votes = [
        ("positive", "positive"),
        ("negative", "negative"),
        ("positive", "neutral"),
        ("neutral", "neutral"),
    ]
    for i, (a, b) in enumerate(votes):
        item = make_item(
            project, f"Battery lasts {i + 1} days. " + XSS * (i == 2), required_labels=2
        )
        label_as(people[0], item, a)
        label_as(people[1], item, b)

    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/?next=/projects/{project.pk}/agreement/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector(".disagreement")
    page.click("details.confusion summary")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "agreement.png"), full_page=True)
    assert XSS in page.inner_text(".disagreement-text")

    page.click(".disagreement button[value=neutral]")
    page.wait_for_selector(".messages")
    disputed = Item.objects.get(text__contains="<script>")
    assert (disputed.final_label, disputed.adjudicated_by) == ("neutral", admin)
    assert sorted(disputed.annotations.values_list("label", flat=True)) == ["neutral", "positive"]
