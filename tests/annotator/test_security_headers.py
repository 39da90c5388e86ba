"""Every response carries the Content-Security-Policy, X-Content-Type-Options and
Referrer-Policy headers (annotator/views/headers.py, Django's SecurityMiddleware): every
route of the site, asked as staff with real ids, and the admin, the API, errors and static
paths. That the pages satisfy the policy is the browser's to say (tests/browser/test_csp.py);
here, that no template keeps an inline script, event handler or javascript: link."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from annotator.models import Alert, AlertRule, Annotation, BulkLabeling, ImportJob
from tests.annotator import insight_data
from tests.annotator.serving_helpers import token_client

ROOT = Path(__file__).resolve().parents[2]


def _routes(patterns=None, prefix: str = "") -> list[str]:
    """Every route of the site but the admin's (asked for below), converters left in."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace != "admin":
                found += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            found.append(prefix + str(pattern.pattern))
    return found


def _assert_headers(response, what: str) -> None:
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY, what
    assert response["X-Content-Type-Options"] == "nosniff", what
    assert response["Referrer-Policy"] == "same-origin", what


@pytest.fixture
def ids(project, labeler):
    built = insight_data.build(project, labeler)
    item = built["items"][0]
    rule = AlertRule.objects.create(project=project, name="spike", label="negative",
                                    threshold=0.5, window=4)
    return {
        "project_id": project.pk, "item_id": item.pk,
        "job_id": ImportJob.objects.create(project=project, filename="r.csv").pk,
        "version_id": built["v2"].pk, "user_id": labeler.pk,
        "annotation_id": Annotation.objects.filter(labeler=labeler).first().pk,
        "rule_id": rule.pk,
        "alert_id": Alert.objects.create(rule=rule, project=project, share=0.6, items=4).pk,
        "uidb64": "Mg", "token": "abc-123", "group_id": item.pk,
        "bulk_id": BulkLabeling.objects.create(project=project, user=labeler,
                                               label="positive").pk,
    }


def test_every_route_answers_with_the_security_headers(admin_client, ids):
    admin_client.raise_request_exception = False  # a 500 must carry them too
    routes = _routes()
    assert len(routes) > 60  # the walk finds them all
    answered = {}
    for route in routes:
        url = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m.group(1)]), route)
        response = admin_client.get(url)
        _assert_headers(response, url)
        answered[url] = response.status_code
    pages = [url for url, status in answered.items() if status == 200]
    assert len(pages) >= 30, answered  # most are real pages, not errors


@pytest.mark.parametrize("path", [
    "/admin/", "/admin/annotator/alertrule/", "/admin/annotator/alertrule/add/",
    "/admin/annotator/apitoken/add/", "/admin/annotator/project/",
])
def test_admin_pages_answer_with_the_security_headers(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 200
    _assert_headers(response, path)


def test_anonymous_pages_errors_the_api_and_static_paths_carry_them(client, labeler):
    for response in (client.get("/accounts/login/"), client.get("/"),
                     client.get("/no/such/page/"), client.get("/static/annotator/app.css"),
                     client.post("/accounts/login/", {"username": "x", "password": "y"}),
                     APIClient().get("/api/projects/"), token_client(labeler).get("/api/projects/"),
                     client.get("/invite/"), client.get("/healthz")):
        _assert_headers(response, response.wsgi_request.path)


def test_the_policy_allows_no_inline_script_and_only_this_sites_sources():
    policy = dict(part.split(" ", 1) for part in settings.CONTENT_SECURITY_POLICY.split("; "))
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"


INLINE = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"
                    r"|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


def test_no_template_keeps_an_inline_script_an_event_handler_or_a_javascript_link():
    offending = [f"{path.relative_to(ROOT)}: {match.group(0)}"
                 for path in sorted((ROOT / "templates").rglob("*.html"))
                 for match in INLINE.finditer(path.read_text(encoding="utf-8"))]
    assert offending == []
