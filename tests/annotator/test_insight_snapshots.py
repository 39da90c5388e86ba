"""Insight pages from a snapshot: served at once, refreshed by a worker when the data move."""

import pytest
from django.test import Client
from django.urls import reverse

from annotator import tasks
from annotator.models import Annotation, Item
from annotator.services import insight_snapshots
from tests.annotator.insight_data import build

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(project, labeler):
    return build(project, labeler)


@pytest.fixture
def queued(monkeypatch):
    """Refresh tasks the views queue, as (project id, page, by); run with run_queued()."""
    calls = []
    monkeypatch.setattr(tasks.refresh_insight_task, "delay", lambda *args: calls.append(args))
    return calls


def run_queued(queued):
    while queued:
        tasks.refresh_insight_task(*queued.pop(0))


def add_label(item, labeler, label="negative"):
    Annotation.objects.create(item=item, labeler=labeler, label=label)
    Item.objects.filter(pk=item.pk).update(annotation_count=1)


def test_a_new_label_is_served_after_the_refresh_it_queues(lead_client, project, data,
                                                           labeler, queued):
    url = reverse("insight_dashboard", args=[project.pk])
    first = lead_client.get(url)  # no snapshot yet: computed in the request
    assert not first.context["snapshot"]["refreshing"] and not queued
    before = first.context["report"]
    add_label(data["items"][4], labeler)

    stale = lead_client.get(url)
    assert stale.context["report"]["labelers"]["total"] == before["labelers"]["total"]
    assert stale.context["snapshot"]["refreshing"]
    assert b'http-equiv="refresh"' in stale.content and b"being computed" in stale.content
    assert queued == [(project.pk, "dashboard", "")]

    lead_client.get(url)  # a second view while the refresh is on its way queues no other
    assert len(queued) == 1
    run_queued(queued)
    fresh = lead_client.get(url)
    assert not fresh.context["snapshot"]["refreshing"] and not queued
    assert b'http-equiv="refresh"' not in fresh.content
    report = fresh.context["report"]
    assert report["labelers"]["total"] == before["labelers"]["total"] + 1
    assert report["over_time"]["series"]["negative"][-1] == \
        before["over_time"]["series"]["negative"][-1] + 1


def test_analytics_snapshots_are_per_grouping(lead_client, project, data, labeler, queued):
    url = reverse("insight_analytics", args=[project.pk])
    by_kind = lead_client.get(url, {"by": "kind"}).context["report"]
    assert lead_client.get(url, {"by": "week"}).context["report"]["by"] == "week"
    add_label(data["items"][4], labeler)
    assert lead_client.get(url, {"by": "kind"}).context["report"] == by_kind
    assert queued == [(project.pk, "analytics", "kind")]
    run_queued(queued)
    fresh = lead_client.get(url, {"by": "kind"}).context["report"]
    assert fresh["labels"]["total"] == by_kind["labels"]["total"] + 1
    assert lead_client.get(url, {"by": "meta:no such"}).status_code == 400


def test_an_old_snapshot_is_refreshed_even_without_a_new_label(lead_client, project, data,
                                                               queued, monkeypatch):
    url = reverse("insight_dashboard", args=[project.pk])
    lead_client.get(url)
    assert not lead_client.get(url).context["snapshot"]["refreshing"]
    monkeypatch.setattr(insight_snapshots, "LIVE_SECONDS", -1)  # leases and runs move alone
    assert lead_client.get(url).context["snapshot"]["refreshing"]
    assert queued == [(project.pk, "dashboard", "")]


def test_a_refresh_that_fails_frees_its_page(project, data, queued, monkeypatch):
    insight_snapshots.page_context(project, "dashboard")
    add_label(data["items"][4], data["items"][0].annotations.first().labeler)
    insight_snapshots.page_context(project, "dashboard")
    assert len(queued) == 1

    def broken(*args):
        raise RuntimeError("database went away")

    monkeypatch.setattr(insight_snapshots, "compute", broken)
    with pytest.raises(RuntimeError):
        run_queued(queued)
    insight_snapshots.page_context(project, "dashboard")  # queues again: the lock is gone
    assert len(queued) == 1


def test_snapshots_are_kept_per_project(project, other_project, data, queued):
    ours = insight_snapshots.page_context(project, "dashboard")["report"]
    theirs = insight_snapshots.page_context(other_project, "dashboard")["report"]
    assert ours["labelers"]["total"] > 0 and theirs["labelers"]["total"] == 0


def test_labelers_get_no_snapshot(project, data, labeler):
    client = Client()
    client.force_login(labeler)
    assert client.get(reverse("insight_dashboard", args=[project.pk])).status_code == 403


def test_snapshots_live_where_the_worker_and_every_web_process_see_them(settings):
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    assert not isinstance(caches["insight"], LocMemCache)
    location = settings.CACHES["insight"]["LOCATION"]
    if settings.CACHE_URL:  # Redis, which every process and machine reaches
        assert location == settings.CACHE_URL
    else:  # files beside the embedded database
        assert location.startswith(str(settings.VAR_DIR))
