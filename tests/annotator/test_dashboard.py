"""The admin dashboard: who may see it, and the figures it shows."""

import base64
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.selectors import insight as selectors_insight
from tests.annotator.insight_data import XSS, build

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(project, labeler):
    return build(project, labeler)


def url(project):
    return reverse("insight_dashboard", args=[project.pk])


def test_anonymous_users_are_sent_to_login(client, project):
    response = client.get(url(project))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_labelers_and_outsiders_are_refused(labeler_client, project, outsider, client):
    assert labeler_client.get(url(project)).status_code == 403
    client.force_login(outsider)
    assert client.get(url(project)).status_code == 403


def test_unknown_project_is_404_for_admins(admin_client):
    assert admin_client.get(reverse("insight_dashboard", args=[999_999])).status_code == 404


def test_empty_project_renders_without_charts(admin_client, project):
    response = admin_client.get(url(project))
    assert response.status_code == 200
    assert b"No model version yet" in response.content
    assert b"data:image/svg+xml" not in response.content


def test_selector_counts_labels_per_day_labeler_and_label(project, labeler, data):
    report = selectors_insight.project_dashboard(project)
    today = timezone.localdate()
    over_time = report["over_time"]
    assert over_time["days"] == [today - timedelta(days=1), today]
    assert over_time["series"] == {"negative": [1, 1], "neutral": [1, 0], "positive": [2, 2]}
    labelers = report["labelers"]
    assert [(r["username"], r["count"], r["by_label"]) for r in labelers["rows"]] == [
        ("lena", 4, [1, 1, 2]),
        ("mia", 3, [1, 0, 2]),
    ]
    assert labelers["distribution"] == [2, 1, 4]


def test_selector_reports_versions_queue_and_runs(project, data):
    report = selectors_insight.project_dashboard(project)
    assert [(v["version"], v["label_count"], v["macro_f1"], v["is_active"], v["predictions"])
            for v in report["versions"]] == [(1, 40, 0.5, False, 1), (2, 60, 0.8, True, 2)]
    assert report["active"]["version"] == 2
    assert [row["label"] for row in report["per_class"]] == ["negative", "neutral", "positive"]
    queue = report["queue"]
    assert {k: queue[k] for k in ("pool", "open", "labeled", "done", "gold", "ranked",
                                  "ranked_by_active", "stale_ranked", "open_predicted",
                                  "labels_since_active")} == {
        "pool": 5, "open": 1, "labeled": 4, "done": 4, "gold": 1, "ranked": 2,
        "ranked_by_active": 1, "stale_ranked": 1, "open_predicted": 1, "labels_since_active": 3,
    }
    assert queue["open_predicted_share"] == 1.0
    runs = report["runs"]
    assert runs["by_status"] == {"succeeded": 2, "failed": 1}
    took = {run["model_version__version"]: run["duration_seconds"] for run in runs["rows"]}
    assert took[2] == 125.0
    agreement = report["agreement"]
    assert (agreement["items"], agreement["disagreement_count"]) == (3, 2)
    assert agreement["pairs"][0]["kappa"] == pytest.approx(-0.5)


def test_dashboard_shows_the_figures_and_charts(admin_client, project, data):
    response = admin_client.get(url(project))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("v2 <strong>active</strong>", "0.800", "2 min 5 s", "-0.500",
                 "ValueError: need labeled examples", "33%"):
        assert text in html, text
    charts = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    # per day, per labeler, distribution, learning curve, confusion matrix
    assert len(charts) == 5
    svgs = [base64.b64decode(chart).decode() for chart in charts]
    assert all(svg.lstrip().startswith("<?xml") and "<script" not in svg for svg in svgs)
    assert any(">v2<" in svg for svg in svgs)  # the learning curve names the versions


def test_label_names_from_users_are_escaped(admin_client, project, data):
    project.labels = [*project.labels, {"name": XSS, "key": "4"}]
    project.save()
    data["items"][4].annotations.create(labeler=data["mia"], label=XSS)
    html = admin_client.get(url(project)).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for chart in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html):
        svg = base64.b64decode(chart).decode()
        assert "<script" not in svg


def test_project_list_links_to_the_insight_pages_for_staff_only(
    admin_client, project, labeler, client
):
    html = admin_client.get(reverse("project_list")).content.decode()
    for name in ("insight_dashboard", "insight_analytics", "model_registry", "import_upload"):
        assert reverse(name, args=[project.pk]) in html
    client.force_login(labeler)
    html = client.get(reverse("project_list")).content.decode()
    assert reverse("insight_dashboard", args=[project.pk]) not in html
