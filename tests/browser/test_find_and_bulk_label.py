"""Headless Chromium: a team lead searches, opens "more like this", deselects one result,
labels the rest in bulk and undoes it, all from the keyboard and the mouse as a person would."""

import hashlib

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from annotator.models import Annotation, BulkLabeling, Item, Membership
from annotator.services.pool_embeddings import embeddings_write, encoder_key
from tests.browser.conftest import ARTIFACTS, closes_its_db_connection, needs_chromium
from tests.conftest import PASSWORD

pytestmark = needs_chromium
TEXTS = {"five stars, fits great": [1, 0, 0], "Five stars, fits great!!": [1, 0.02, 0],
         "fits great, five stars": [1, 0, 0.03], "love it, fits great": [0.9, 0.1, 0.1],
         "the zipper broke": [0, 1, 0], "默认好评": [0.1, 0, 1]}


@pytest.mark.django_db(transaction=True)
@closes_its_db_connection
def test_search_more_like_this_select_bulk_label_and_undo(live_server, browser_page,
                                                           monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Project

    project = Project.objects.create(name="Shirts")
    lead = get_user_model().objects.create_user("tess", password=PASSWORD)
    Membership.objects.create(project=project, user=lead, role=Membership.Role.ADMIN)
    items = {text: Item.objects.create(project=project, text=text, raw_text=text,
                                       content_hash=hashlib.sha256(text.encode()).hexdigest())
             for text in TEXTS}
    embeddings_write(project, encoder_key(project), [i.pk for i in items.values()],
                     np.asarray(list(TEXTS.values()), dtype=np.float32))

    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/?next=/projects/{project.pk}/find/")
    page.fill("input[name=username]", "tess")
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#find-q")

    page.click("h1")  # the box has the focus on arrival; "/" brings it back
    page.keyboard.press("/")
    page.keyboard.type("five stars")
    page.keyboard.press("Enter")
    page.wait_for_selector("input.pick")
    assert page.locator("input.pick").count() == 3  # the words search: three contain them

    first = items["five stars, fits great"]
    page.click(f"a[href='?like={first.pk}']")
    page.wait_for_selector("text=similarity")
    assert page.locator("input.pick").count() == 5  # every other item, nearest first
    page.uncheck(f"input.pick[value='{items['the zipper broke'].pk}']")
    page.uncheck(f"input.pick[value='{items['默认好评'].pk}']")
    assert page.inner_text("#selected-count") == "3 selected"
    page.select_option("#bulk-label", "positive")
    page.click("#bulk-submit")
    page.wait_for_selector("text=Labeled 3 items positive.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "find_bulk_labeled.png"), full_page=True)

    labeled = set(Annotation.objects.filter(picked_by="bulk").values_list("item__text",
                                                                          flat=True))
    assert labeled == {"Five stars, fits great!!", "fits great, five stars",
                       "love it, fits great"}
    assert BulkLabeling.objects.get().query == {"kind": "similar", "item": first.pk}

    page.click(".bulk-action button:has-text('Undo')")
    page.wait_for_selector("text=Undone: 3 labels positive removed.")
    assert not Annotation.objects.exists()
    assert page.locator(".bulk-action").inner_text().strip().endswith("undone")
