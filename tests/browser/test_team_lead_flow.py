"""Headless Chromium: a team lead's first day without /admin/.

The lead creates a project with five custom labels and guidelines, invites a labeler,
imports a file through the preview, the labeler sets a password from the invitation link,
labels with the keyboard and changes an old label, and the lead reads the dashboard.
"""

import pytest
from django.contrib.auth import get_user_model

from annotator.models import Annotation, ImportJob, Project
from tests.browser.conftest import ARTIFACTS, closes_its_db_connection, needs_chromium
from tests.conftest import PASSWORD

pytestmark = needs_chromium

LABELS = ["joy", "anger", "sadness", "fear", "surprise"]
REVIEWS = [
    "So happy with these boots, they fit perfectly",
    "Furious: the parcel came two weeks late",
    "A bit sad the colour faded after one wash",
    "Worried the zip will break soon",
    "Wow, did not expect it to be this light",
    "快递很快，非常开心",
]


def _log_in(page, base, username, password, next_url="/"):
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.keyboard.press("Enter")


@pytest.mark.django_db(transaction=True)
@closes_its_db_connection
def test_a_team_lead_gets_a_second_person_labeling_a_custom_project_without_the_admin(
    live_server, browser_page, monkeypatch, tmp_path
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    from annotator import tasks

    # the worker's side, in the live server's thread: the import runs when it is queued
    monkeypatch.setattr(tasks.import_file_task, "delay", tasks.import_file_task)
    monkeypatch.setattr(tasks.seed_pool_task, "delay", lambda *args: None)
    monkeypatch.setattr(tasks.vocabulary_check_task, "delay", lambda *args: None)
    get_user_model().objects.create_user("lead", password=PASSWORD, is_staff=True)
    page, base = browser_page, live_server.url
    ARTIFACTS.mkdir(exist_ok=True)

    # 1. a project with five labels and guidelines, from the project list
    _log_in(page, base, "lead", PASSWORD)
    page.click("text=New project")
    page.fill("#id_name", "Emotions")
    for row, name in enumerate(LABELS):
        page.fill(f"#id_labels-{row}-name", name)
    page.fill("#id_guidelines", "## How to label\n\n**Anger** wins when anger and sadness mix.")
    page.click("button:has-text('Create project')")
    page.wait_for_selector("text=Project Emotions created")
    project = Project.objects.get(name="Emotions")
    assert project.label_names == LABELS

    # 2. a new labeler, invited with a link
    page.goto(f"{base}/projects/{project.pk}/people/")
    page.fill("#invite-username", "mia")
    page.click("button:has-text('Create and get the link')")
    invitation = page.input_value("input.invitation-link")
    assert "/invite/" in invitation

    # 3. an import through the preview: the file's own column names, mapped on the page
    upload = tmp_path / "reviews.csv"
    upload.write_text("sku,review\n" + "".join(f'B{i},"{text}"\n' for i, text in enumerate(REVIEWS)),
                      encoding="utf-8")
    page.goto(f"{base}/projects/{project.pk}/import/")
    page.set_input_files("input[name=file]", str(upload))
    page.click("button:has-text('Upload and preview')")
    page.wait_for_selector("text=Furious: the parcel came two weeks late")
    page.screenshot(path=str(ARTIFACTS / "team_lead_import_preview.png"), full_page=True)
    page.select_option("select[name=text_column]", "review")
    page.select_option("select[name=id_column]", "sku")
    page.click("button:has-text('Import')")
    page.wait_for_selector(f"text={len(REVIEWS)} imported")
    assert ImportJob.objects.get().status == "succeeded"

    # 4. the labeler: password from the link, guidelines, labels with the keyboard
    page.context.clear_cookies()
    page.goto(invitation)
    page.fill("input[name=new_password1]", "mia-labels-fast-42")
    page.fill("input[name=new_password2]", "mia-labels-fast-42")
    page.click("button:has-text('Set password and log in')")
    page.goto(f"{base}/projects/{project.pk}/label/")
    page.wait_for_selector("#item-body .text")
    page.click("text=Guidelines")  # a collapsed panel above the item
    assert "Anger wins when anger and sadness mix" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "team_lead_labeling.png"), full_page=True)
    first_text = page.inner_text("#item-body")
    for done, key in enumerate(["1", "2", "3"], start=1):
        page.keyboard.press(key)
        page.wait_for_function(
            f"() => document.getElementById('mine-today').textContent === '{done}'")
    mia = get_user_model().objects.get(username="mia")
    labels = dict(Annotation.objects.filter(labeler=mia).values_list("item__text", "label"))
    assert sorted(labels.values()) == ["anger", "joy", "sadness"]
    assert labels[first_text] == "joy"

    # 5. an old label changed on "My labels"
    page.goto(f"{base}/projects/{project.pk}/my-labels/")
    row = page.locator("article.my-label", has_text=first_text)
    with page.expect_navigation():
        row.locator("button", has_text="surprise").click()
    assert Annotation.objects.get(labeler=mia, item__text=first_text).label == "surprise"
    page.screenshot(path=str(ARTIFACTS / "team_lead_my_labels.png"), full_page=True)

    # 6. the lead reads the dashboard
    page.context.clear_cookies()
    _log_in(page, base, "lead", PASSWORD, f"/projects/{project.pk}/dashboard/")
    body = page.inner_text("body")
    assert "Emotions" in body and "3" in body
    page.screenshot(path=str(ARTIFACTS / "team_lead_dashboard.png"), full_page=True)
