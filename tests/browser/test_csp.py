"""Headless Chromium opens the main pages under the site's Content-Security-Policy and sees
no violation: no inline script or handler blocked, every page script runs (its first fetch
answers), Swagger UI renders from its split start script, the admin and DRF's pages work."""

import pytest
from django.contrib.auth import get_user_model

from annotator.models import AlertRule, ImportJob, Membership
from annotator.services import people
from tests.annotator import insight_data
from tests.browser.conftest import closes_its_db_connection, needs_chromium
from tests.conftest import PASSWORD

pytestmark = needs_chromium

# every violation the page reports, kept in the page (an init script runs in each document)
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`));
"""


@pytest.mark.django_db(transaction=True)
@closes_its_db_connection
def test_the_main_pages_raise_no_csp_violation(live_server, browser_page, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    from annotator import tasks
    from annotator.models import Project

    for name in ("refresh_insight_task", "seed_pool_task", "vocabulary_check_task"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args: None)
    project = Project.objects.create(name="Shoes")
    lena = get_user_model().objects.create_user("lena", password=PASSWORD)
    Membership.objects.create(project=project, user=lena)
    built = insight_data.build(project, lena)
    boss = get_user_model().objects.create_user("boss", password=PASSWORD, is_staff=True,
                                                is_superuser=True)
    Membership.objects.create(project=project, user=boss, role=Membership.Role.ADMIN)
    job = ImportJob.objects.create(project=project, filename="r.csv",
                                 status=ImportJob.Status.QUEUED)  # polled
    AlertRule.objects.create(project=project, name="spike", label="negative", threshold=0.5,
                             window=4)
    invited = people.member_invite(project=project, username="mia2")
    uidb64, token = people.invitation_make(user=invited, by=boss)

    page, base, p = browser_page, live_server.url, project.pk
    page.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda message: console.append(message.text))

    def visit(path: str, *, fetches: str | None = None, shows: str | None = None) -> None:
        """Open the page; `fetches`: a URL part its script must request (the script ran);
        `shows`: a selector that must appear. Then no violation."""
        if fetches:
            with page.expect_response(lambda r: fetches in r.url and r.status == 200):
                page.goto(base + path)
        else:
            page.goto(base + path)
        if shows:
            page.wait_for_selector(shows)
        assert page.evaluate("window.__csp") == [], path

    visit("/accounts/login/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    visit("/")
    visit(f"/projects/{p}/label/", shows="#item-body .text")  # label.js drew the item
    visit(f"/projects/{p}/items/{built['items'][0].pk}/review")
    visit(f"/projects/{p}/agreement/")
    visit(f"/projects/{p}/label-review/")
    visit(f"/projects/{p}/my-labels/")
    visit(f"/projects/{p}/dashboard/", fetches="/monitoring/status")
    visit(f"/projects/{p}/analytics/", fetches="/monitoring/status")
    visit(f"/projects/{p}/models/", fetches="/models/progress")
    visit(f"/projects/{p}/import/")
    visit(f"/projects/{p}/import/{job.pk}/", fetches=f"/import/{job.pk}/status")
    visit(f"/projects/{p}/people/")
    visit(f"/projects/{p}/settings/")
    visit(f"/projects/{p}/labels/")
    visit("/projects/new/")
    visit("/no/such/page/")
    visit("/admin/")
    visit("/admin/annotator/alertrule/add/")
    visit(f"/admin/annotator/project/{p}/change/")
    visit("/admin/annotator/apitoken/add/")
    visit("/api/projects/")  # DRF's browsable page
    visit("/api/docs/", fetches="/api/schema/", shows=".swagger-ui .info .title")

    # the invitation page reads its token from "#" with its script and posts it
    page.context.clear_cookies()
    visit(f"/invite/#{uidb64}/{token}", shows="input[name=new_password1]")
    assert page.url == f"{base}/invite/"  # the token is out of the address bar
    visit("/invite/", shows="#invitation-missing:not([hidden])")

    assert [line for line in console if "Content Security Policy" in line] == []
