"""The embedded default (`bin/up`): several OS processes label at once on one SQLite file.

Each process is one labeler going through the real services (item_next_claim leases,
annotation_submit records and releases) against the test database file, with the
settings' SQLite options (WAL, BEGIN IMMEDIATE, busy timeout). PostgreSQL has its own
multi-process test in test_leases.py.
"""

import json
import multiprocessing
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotator.models import Annotation, Item, Membership
from tests.annotator import sqlite_labeling_worker
from tests.annotator.labeling_factories import make_items

PROCESSES = 6
SECONDS = 4.0


@pytest.fixture
def labelers(project):
    users = [get_user_model().objects.create_user(f"proc{i}") for i in range(PROCESSES)]
    Membership.objects.bulk_create(Membership(project=project, user=u) for u in users)
    return users


def _label_in_processes(project, labelers, tmp_path: Path) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(labelers))
    outs = [tmp_path / f"labeler-{user.pk}.json" for user in labelers]
    procs = [
        ctx.Process(
            target=sqlite_labeling_worker.run,
            kwargs={
                "sqlite_path": str(connection.settings_dict["NAME"]),
                "labeler_id": user.pk,
                "project_id": project.pk,
                "seconds": SECONDS,
                "start": start,
                "out_path": str(out),
            },
        )
        for user, out in zip(labelers, outs, strict=True)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    results = [json.loads(out.read_text()) if out.exists() else None for out in outs]
    errors = [error for result in results if result for error in result["errors"]]
    assert [proc.exitcode for proc in procs] == [0] * len(procs), "\n".join(errors[:3])
    return results


def _overlapping(holds: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Pairs of labelers who held one item at the same moment (holds: who, begin, end)."""
    return [
        (who, other)
        for i, (who, begin, end) in enumerate(holds)
        for other, other_begin, other_end in holds[i + 1 :]
        if who != other and begin < other_end and other_begin < end
    ]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_processes_labeling_at_once_on_sqlite_never_lock_share_or_lose(project, labelers, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the embedded SQLite default; CI runs this in its SQLite pass")
    singles = make_items(project, 2000, prefix="single")
    overlap = make_items(project, 60, prefix="overlap", required_labels=3)
    required = {item.pk: item.required_labels for item in singles + overlap}

    results = _label_in_processes(project, labelers, tmp_path)

    assert {r["journal_mode"] for r in results} == {"wal"}
    errors = [error for r in results for error in r["errors"]]
    locked = [error for error in errors if "database is locked" in error]
    assert not locked, f"{len(locked)} x 'database is locked', the first:\n{locked[0]}"
    assert not errors, "\n".join(errors[:3])
    assert all(r["submitted"] for r in results)  # every process got to label
    assert not [r for r in results if r["reloads_moved"] or r["double_submit_created"]]
    # holding a lease, nobody found their item already completed by someone else
    assert [r["already_complete"] for r in results] == [[]] * PROCESSES

    # no item leased to two labelers at once: each hold lies within a real lease
    holds = defaultdict(list)
    for r in results:
        for item_id, got, gave_back in r["holds"]:
            holds[item_id].append((r["labeler_id"], got, gave_back))
    assert {item_id: c for item_id, h in holds.items() if (c := _overlapping(h))} == {}

    # no lost, invented or duplicate annotations
    submits = Counter((r["labeler_id"], item_id) for r in results for item_id in r["submitted"])
    rows = Counter(Annotation.objects.values_list("labeler_id", "item_id"))
    assert rows == submits
    assert set(rows.values()) == {1}
    assert sum(submits.values()) >= 50  # enough happened at once to mean something

    # annotation_count agrees with the rows and never passes the labels required
    per_item = Counter(item_id for _, item_id in rows)
    counts = dict(Item.objects.values_list("pk", "annotation_count"))
    assert {pk: n for pk, n in counts.items() if n != per_item.get(pk, 0)} == {}
    assert [pk for pk, n in per_item.items() if n > required[pk]] == []
    assert not Item.objects.filter(leased_to__isnull=False).exists()  # all given back
