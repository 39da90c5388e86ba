"""Headless Chromium measures what a test of the HTML cannot: long labels stay inside their
buttons and show as written, links are readable, wide tables stay inside their cards, and
no page asks for a file that is not there (the favicon)."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotator.models import ImportJob, Membership, ModelVersion, TrainingRun
from tests.annotator.labeling_factories import make_item
from tests.browser.conftest import closes_its_db_connection, needs_chromium
from tests.conftest import PASSWORD

pytestmark = needs_chromium
_closes_its_db_connection = closes_its_db_connection

LONG = "Unhappy with the delivery but pleased by product"  # 48 characters, words
UNBROKEN = "x" * 50  # no place to break a line
LABELS = [LONG, UNBROKEN, "pos", "NPS promoter"]

# the contrast of an element's text with the first opaque background behind it (WCAG 2)
CONTRAST = """(el) => {
  const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = el, bg = null;
  while (node && !bg) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || c[3] > 0) bg = c.slice(0, 3);
    node = node.parentElement;
  }
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg || [255, 255, 255])];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def _log_in(page, base, username, next_url):
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


@pytest.mark.django_db(transaction=True)
@_closes_its_db_connection
def test_long_labels_fit_their_buttons_and_show_as_written(live_server, browser_page,
                                                           monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Project

    project = Project.objects.create(name="Shoes", labels=[{"name": n} for n in LABELS])
    user = get_user_model().objects.create_user("lena", password=PASSWORD)
    Membership.objects.create(project=project, user=user)
    make_item(project, "The parcel came late, the shoes are lovely.")
    page = browser_page
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    _log_in(page, live_server.url, "lena", reverse("label_page", args=[project.pk]))
    page.wait_for_selector("#item-body .text")
    for width in (1100, 375):
        page.set_viewport_size({"width": width, "height": 800})
        for name in LABELS:
            button = page.locator(f".label-btn[data-label='{name}']")
            assert button.get_attribute("title") == name
            shown = button.locator(".label-name")
            assert shown.inner_text() == name  # no capitalisation: innerText applies it
            outer, inner = button.bounding_box(), shown.bounding_box()
            assert inner["x"] >= outer["x"] - 0.5
            assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5, (width, name)
            assert inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert missing == []


@pytest.mark.django_db(transaction=True)
@_closes_its_db_connection
def test_wide_tables_stay_in_their_cards_and_links_are_readable(live_server, browser_page,
                                                                monkeypatch, tmp_path):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from annotator.models import Project

    project = Project.objects.create(name="Shoes")
    get_user_model().objects.create_superuser("boss", password=PASSWORD)
    for i in range(3):
        member = get_user_model().objects.create_user(
            f"a-labeler-with-a-long-name-{i}", email=f"someone.with.a.long.address{i}@example.com")
        Membership.objects.create(project=project, user=member)
    run = TrainingRun.objects.create(project=project, status="succeeded", trigger="manual")
    ModelVersion.objects.create(
        project=project, version=1, training_run=run, base_model="multilingual-e5-small",
        artifact_path="p/v1", label_count=40, is_active=True,
        metrics={"macro_f1": 0.61, "accuracy": 0.7, "evaluated_on": "gold", "per_class": {
            name: {"f1": 0.6, "support": 30} for name in ("negative", "neutral", "positive")}})
    upload = tmp_path / "upload.csv"
    upload.write_text("text\nGreat shoes\n", encoding="utf-8")
    job = ImportJob.objects.create(project=project, filename="reviews.csv",
                                   status=ImportJob.Status.PREVIEW, upload_path=str(upload))
    page = browser_page
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.set_viewport_size({"width": 760, "height": 800})
    _log_in(page, live_server.url, "boss", reverse("model_registry", args=[project.pk]))
    for path in (reverse("model_registry", args=[project.pk]),
                 reverse("people", args=[project.pk])):
        page.goto(live_server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        for card in page.locator(".card:has(> table)").all():
            box, table = card.bounding_box(), card.locator("> table").bounding_box()
            # the table may be wider (it scrolls inside the card), but the card holds it
            assert card.evaluate("(c) => getComputedStyle(c).overflowX") == "auto", path
            assert box["x"] + box["width"] <= 760
            assert table["x"] >= box["x"]
    page.goto(live_server.url + reverse("import_preview", args=[project.pk, job.pk]))
    cancel = page.locator("button", has_text="Cancel this upload")
    assert cancel.evaluate(CONTRAST) >= 4.5
    assert missing == []
