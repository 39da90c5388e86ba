"""The insight pages' cache: keyed by the data state, so a change is seen on the next view."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from annotator.lib import charts
from annotator.models import Annotation, Membership, Prediction
from annotator.selectors import insight as selectors_insight
from annotator.services.labeling import annotation_change, item_adjudicate
from tests.annotator.insight_data import build
from tests.annotator.labeling_factories import make_item
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
GROUPINGS = ("kind", "week", "meta:product")


@pytest.fixture
def data(project, labeler):
    return build(project, labeler)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def lead(project):
    lead = get_user_model().objects.create_user("lead", password=PASSWORD)
    Membership.objects.create(project=project, user=lead, role=Membership.Role.ADMIN)
    return lead


@pytest.fixture
def lead_client(lead):
    return client_of(lead)


def _without_times(report: dict) -> dict:
    """The dashboard minus the figures that move with the clock between two reads."""
    queue = {k: v for k, v in report["queue"].items() if k != "newest_prediction_age_seconds"}
    return {**report, "queue": queue}


def assert_cache_matches_a_fresh_computation(project):
    cached = selectors_insight.project_dashboard(project)
    assert _without_times(cached) == _without_times(
        selectors_insight.project_dashboard(project, cached=False))
    for by in GROUPINGS:
        assert selectors_insight.sentiment_analytics(project, by=by) == \
            selectors_insight.sentiment_analytics(project, by=by, cached=False)


def test_cached_figures_equal_the_uncached_computation(project, data):
    selectors_insight.project_dashboard(project)  # fills the cache
    for by in GROUPINGS:
        selectors_insight.sentiment_analytics(project, by=by)
    assert_cache_matches_a_fresh_computation(project)


def test_a_changed_label_is_seen_by_the_dashboard_and_analytics(project, data, labeler):
    before = selectors_insight.project_dashboard(project)["labelers"]["distribution"]
    i3_vote = Annotation.objects.get(item=data["items"][2], labeler=labeler)  # neutral
    selectors_insight.sentiment_analytics(project, by="kind")
    annotation_change(labeler=labeler, annotation=i3_vote, label="positive")
    after = selectors_insight.project_dashboard(project)["labelers"]["distribution"]
    assert after == [before[0], before[1] - 1, before[2] + 1]  # negative, neutral, positive
    query = next(row for row in selectors_insight.sentiment_analytics(
        project, by="kind")["labels"]["rows"] if row["group"] == "query")
    assert query["counts"] == [0, 0, 1]
    assert_cache_matches_a_fresh_computation(project)


def test_an_adjudication_is_seen_by_the_analytics(project, data, admin_user):
    report = selectors_insight.sentiment_breakdown(project, source="labels", by="kind")
    assert report["total"] == 3  # i4 is a tie, left out
    item_adjudicate(admin=admin_user, item=data["items"][3], label="neutral")
    report = selectors_insight.sentiment_breakdown(project, source="labels", by="kind")
    assert report["total"] == 4
    assert_cache_matches_a_fresh_computation(project)


def test_new_predictions_and_items_are_seen_by_the_analytics(project, data):
    before = selectors_insight.sentiment_analytics(project, by="kind")
    item = make_item(project, "new kettle", meta={"product": "Kettle"})
    Prediction.objects.create(item=item, model_version=data["v2"], label="negative",
                              probabilities=[0.8, 0.1, 0.1], uncertainty=0.3)
    after = selectors_insight.sentiment_analytics(project, by="kind")
    assert after["predictions"]["total"] == before["predictions"]["total"] + 1
    assert after["labels"]["items"] == before["labels"]["items"] + 1
    assert after["labels"]["pool"] == before["labels"]["pool"] + 1
    assert_cache_matches_a_fresh_computation(project)


def test_a_chart_is_drawn_once_per_input(monkeypatch):
    first = charts.label_bars(["negative", "positive"], [3, 4])
    assert first == charts.label_bars.draw(["negative", "positive"], [3, 4])

    def no_drawing(*args, **kwargs):
        raise AssertionError("drawn again")

    monkeypatch.setattr(charts, "_figure", no_drawing)
    assert charts.label_bars(["negative", "positive"], [3, 4]) == first
    with pytest.raises(AssertionError, match="drawn again"):
        charts.label_bars(["negative", "positive"], [3, 5])  # other data: a new chart


@pytest.mark.parametrize("name", ["insight_dashboard", "insight_analytics"])
def test_a_warm_cache_opens_no_page_to_labelers(name, admin_user, lead, labeler, outsider,
                                               project, data):
    url = reverse(name, args=[project.pk])
    assert client_of(admin_user).get(url).status_code == 200  # fills the cache
    assert client_of(lead).get(url).status_code == 200  # the project's admin
    assert client_of(labeler).get(url).status_code == 403
    assert client_of(outsider).get(url).status_code == 403
