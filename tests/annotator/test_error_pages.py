"""403 and 404 are pages of the site: its navigation, a way home, no stack trace."""

import pytest
from django.urls import reverse


def _assert_site_page(response, status: int, title: str) -> str:
    body = response.content.decode()
    assert response.status_code == status
    assert f"<h1>{title}</h1>" in body
    assert 'class="topbar"' in body and f'href="{reverse("project_list")}"' in body
    assert "Traceback" not in body and "site-packages" not in body
    return body


def test_a_forbidden_page_is_styled_and_links_home(labeler_client, project):
    response = labeler_client.get(reverse("insight_dashboard", args=[project.pk]))
    body = _assert_site_page(response, 403, "Not allowed")
    assert "Log out" in body  # the signed-in navigation of base.html


def test_a_missing_page_is_styled_and_links_home(labeler_client):
    body = _assert_site_page(labeler_client.get("/no/such/page/"), 404, "Not found")
    assert "/no/such/page/" in body


def test_a_missing_object_is_the_same_page(labeler_client):
    _assert_site_page(labeler_client.get(reverse("my_labels", args=[999_999])), 404, "Not found")


@pytest.mark.django_db
def test_the_404_page_escapes_the_path(client):
    response = client.get("/<script>alert(1)</script>/")
    assert response.status_code == 404 and b"<script>alert(1)" not in response.content


@pytest.mark.django_db
def test_no_page_asks_for_a_favicon_that_is_not_there(client):
    """base.html links a favicon served as a static file; /favicon.ico, which pages that do
    not extend base.html (the admin, the API's) make the browser ask for, leads to it."""
    from django.contrib.staticfiles import finders
    from django.templatetags.static import static

    icon = static("annotator/favicon.svg")
    assert finders.find("annotator/favicon.svg")
    page = client.get(reverse("login")).content.decode()
    assert f'<link rel="icon" href="{icon}" type="image/svg+xml">' in page
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == icon
