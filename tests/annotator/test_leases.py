"""Assignment: leases, expiry, the already-labeled rule, gold, and concurrency."""

import multiprocessing
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from annotator.models import Annotation, Item, Membership
from annotator.selectors.queue import queue_for
from annotator.services.labeling import (
    ItemAlreadyComplete,
    ItemNotLeased,
    annotation_submit,
    item_lease_claim,
    item_next_claim,
)
from tests.annotator.labeling_factories import make_item, make_items


def _member(project, name):
    user = get_user_model().objects.create_user(name)
    Membership.objects.create(project=project, user=user)
    return user


@pytest.fixture
def second(project):
    return _member(project, "sam")


def test_two_labelers_never_get_the_same_item(project, labeler, second):
    make_items(project, 2)
    first = item_next_claim(labeler=labeler, project=project)
    other = item_next_claim(labeler=second, project=project)
    assert first.pk != other.pk
    assert item_next_claim(labeler=_member(project, "third"), project=project) is None


def test_a_reload_gives_back_the_item_already_held(project, labeler):
    make_items(project, 5)
    first = item_next_claim(labeler=labeler, project=project)
    assert item_next_claim(labeler=labeler, project=project).pk == first.pk
    assert Item.objects.filter(leased_to=labeler).count() == 1


def test_an_expired_lease_frees_the_item(project, labeler, second):
    item = make_item(project, "only one")
    assert item_next_claim(labeler=labeler, project=project).pk == item.pk
    assert item_next_claim(labeler=second, project=project) is None
    Item.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert item_next_claim(labeler=second, project=project).pk == item.pk
    item.refresh_from_db()
    assert item.leased_to == second


def test_lease_lasts_the_project_lease_time(project, labeler):
    project.lease_seconds = 120
    make_item(project, "timed")
    before = timezone.now()
    item = item_next_claim(labeler=labeler, project=project)
    item.refresh_from_db()
    assert (
        before + timedelta(seconds=119)
        <= item.lease_expires_at
        <= timezone.now() + timedelta(seconds=121)
    )


def test_nobody_gets_an_item_they_already_labeled(project, labeler, second):
    item = make_item(project, "shared", required_labels=2)
    annotation_submit(labeler=labeler, item=item_next_claim(labeler=labeler, project=project),
                      label="neutral")
    assert item_next_claim(labeler=labeler, project=project) is None
    assert item_next_claim(labeler=second, project=project).pk == item.pk


def test_overlap_item_goes_to_the_required_number_of_labelers(project, labeler, second):
    item = make_item(project, "shared", required_labels=2)
    third = _member(project, "third")
    for user in (labeler, second):
        annotation_submit(labeler=user, item=item_next_claim(labeler=user, project=project),
                          label="neutral")
    assert item_next_claim(labeler=third, project=project) is None
    item.refresh_from_db()
    assert item.annotation_count == 2


def test_submit_releases_the_lease(project, labeler):
    make_item(project, "one")
    item = item_next_claim(labeler=labeler, project=project)
    annotation_submit(labeler=labeler, item=item, label="neutral")
    item.refresh_from_db()
    assert item.leased_to is None and item.lease_expires_at is None


def test_late_submit_after_someone_else_finished_is_refused(project, labeler, second):
    item = make_item(project, "contested")
    item_next_claim(labeler=labeler, project=project)
    Item.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    annotation_submit(labeler=second, item=item_next_claim(labeler=second, project=project),
                      label="positive")
    with pytest.raises(ItemAlreadyComplete):
        annotation_submit(labeler=labeler, item=item, label="negative")
    assert list(Annotation.objects.values_list("labeler", flat=True)) == [second.pk]


def test_a_label_for_an_item_leased_to_someone_else_is_refused(project, labeler, second):
    item = make_item(project, "theirs")
    assert item_next_claim(labeler=second, project=project).pk == item.pk
    with pytest.raises(ItemNotLeased):
        annotation_submit(labeler=labeler, item=item, label="positive")
    assert not Annotation.objects.exists()
    item.refresh_from_db()
    assert item.annotation_count == 0
    assert item.leased_to == second and item.lease_expires_at > timezone.now()


def test_a_label_for_an_item_never_served_is_refused(project, labeler):
    served = make_item(project, "first", random_key=0.1)
    other = make_item(project, "other", random_key=0.9)
    assert item_next_claim(labeler=labeler, project=project).pk == served.pk
    with pytest.raises(ItemNotLeased):
        annotation_submit(labeler=labeler, item=other, label="positive")
    assert not Annotation.objects.exists()


def test_a_label_after_the_lease_expired_is_refused_and_frees_the_item(project, labeler):
    item = make_item(project, "slow")
    item_next_claim(labeler=labeler, project=project)
    Item.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ItemNotLeased):
        annotation_submit(labeler=labeler, item=item, label="positive")
    assert not Annotation.objects.exists()
    item.refresh_from_db()
    assert item.leased_to is None


def test_the_labeler_may_change_their_own_label_without_a_lease(project, labeler):
    item = make_item(project, "changed my mind")
    annotation_submit(labeler=labeler, item=item_next_claim(labeler=labeler, project=project),
                      label="positive")
    annotation, created = annotation_submit(labeler=labeler, item=item, label="negative")
    assert not created and annotation.label == "negative"
    assert Annotation.objects.get().label == "negative"


def test_double_submit_counts_once(project, labeler):
    item = make_item(project, "twice")
    assert item_next_claim(labeler=labeler, project=project).pk == item.pk
    _, created_first = annotation_submit(labeler=labeler, item=item, label="neutral")
    _, created_again = annotation_submit(labeler=labeler, item=item, label="neutral")
    assert (created_first, created_again) == (True, False)
    item.refresh_from_db()
    assert item.annotation_count == 1
    assert Annotation.objects.count() == 1


def test_gold_items_stay_out_of_the_queue_by_default(project, labeler):
    make_item(project, "gold", split=Item.Split.GOLD, gold_label="positive")
    assert item_next_claim(labeler=labeler, project=project) is None


def test_gold_items_are_queued_when_the_admin_asks(project, labeler):
    gold = make_item(project, "gold", split=Item.Split.GOLD, gold_label="positive")
    project.label_gold_by_people = True
    project.save()
    item = item_next_claim(labeler=labeler, project=project)
    assert item.pk == gold.pk
    annotation, _ = annotation_submit(labeler=labeler, item=item, label="positive")
    assert annotation.picked_by == Annotation.Picked.GOLD


def test_higher_priority_comes_first_then_random_order(project, labeler):
    low = make_item(project, "low", priority=0.1, random_key=0.0)
    high = make_item(project, "high", priority=0.9, random_key=0.9)
    unscored = make_item(project, "unscored", priority=None, random_key=0.0)
    assert list(queue_for(labeler, project)) == [high, low, unscored]


def test_claim_skips_a_candidate_taken_in_between(project, labeler, second):
    taken, free = (
        make_item(project, "taken", random_key=0.1),
        make_item(project, "free", random_key=0.2),
    )
    Item.objects.filter(pk=taken.pk).update(
        leased_to=second, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    # a stale candidate list that still contains the taken item
    candidates = Item.objects.filter(pk__in=[taken.pk, free.pk]).order_by("random_key")
    assert item_lease_claim(labeler=labeler, candidates=candidates, lease_seconds=60).pk == free.pk


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("required_labels", [1, 3])
def test_concurrent_processes_never_share_an_item_nor_lose_a_label(project, required_labels):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")
    items = make_items(project, 200, required_labels=required_labels)
    users = [_member(project, f"worker{i}") for i in range(12)]
    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    from tests.annotator import lease_worker

    batches = [[u.pk for u in users[i::4]] for i in range(4)]  # 4 processes x 3 labelers
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(lease_worker.run, [(url, batch, project.pk) for batch in batches])
    submits = [pair for result in results for pair in result]

    annotations = list(Annotation.objects.values_list("labeler_id", "item_id"))
    assert len(annotations) == len(submits)  # zero lost annotations
    assert Counter(annotations) == Counter(submits)  # and none invented
    per_item = Counter(item_id for _, item_id in annotations)
    assert set(per_item) == {item.pk for item in items}  # everything got labeled
    assert set(per_item.values()) == {required_labels}  # never more labelers than required
    counts = set(Item.objects.values_list("annotation_count", flat=True))
    assert counts == {required_labels}
    assert not Item.objects.filter(leased_to__isnull=False).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_double_submits_count_once(project, labeler):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")
    import threading

    from django.db import connections

    items = make_items(project, 20)
    Item.objects.update(leased_to=labeler, lease_expires_at=timezone.now() + timedelta(minutes=5))
    results = []

    def press(item, barrier):
        barrier.wait()
        try:
            results.append(annotation_submit(labeler=labeler, item=item, label="positive")[1])
        finally:
            connections.close_all()

    for item in items:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=press, args=(item, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results.count(True) == len(items) and results.count(False) == len(items)
    assert Annotation.objects.count() == len(items)
    assert set(Item.objects.values_list("annotation_count", flat=True)) == {1}


@pytest.fixture(autouse=True)
def _db(db):
    pass


def test_the_queue_index_survives_the_migrations_and_serves_the_queue(project, labeler):
    """Migration 0009 made SQLite rebuild the item table, which drops raw-SQL indexes: every
    "next item" then sorted the whole project (85-150 ms at 270k rows instead of 3-5)."""
    with connection.cursor() as cursor:
        names = connection.introspection.get_constraints(cursor, Item._meta.db_table)
    assert "item_open_queue_idx" in names
    if connection.vendor == "sqlite":
        sql, params = queue_for(labeler, project)[:1].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
        assert "USING INDEX item_open_queue_idx" in plan and "TEMP B-TREE" not in plan


@pytest.mark.django_db
def test_a_new_project_takes_its_lease_length_from_the_setting(settings):
    from annotator.models import Project

    settings.DEFAULT_LEASE_SECONDS = 90
    assert Project.objects.create(name="leased ninety seconds").lease_seconds == 90
