"""Bulk-label 1,000 items in one request, then undo it: time and exactness, over HTTP.

A real gunicorn server on a fresh database (created, migrated, dropped: bench/support.py),
a project of --pool open items, token auth as a project admin. Each of --rounds rounds picks
--select items at random; in each selection --leased items are leased to another labeler
right now and --gold are gold items, so the request has work to refuse. Per round:

- POST /api/projects/<id>/bulk-labels/ with the selection: the seconds the client waits;
  checked: exactly the eligible items got one `bulk` annotation, no leased or gold item was
  touched, and the answer reports the skipped ones by reason;
- POST .../bulk-labels/<id>/undo: the seconds; checked: every item's annotation count, lease
  and annotations are exactly as before the bulk action.

    python -m bench.bulk_label_latency                                   # PostgreSQL
    python -m bench.bulk_label_latency --database-url sqlite:////tmp/bulk.sqlite3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta

import requests

from bench import support


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgres://postgres@127.0.0.1:5432/bench_bulk_labels")
    parser.add_argument("--pool", type=int, default=100_000, help="open items in the project")
    parser.add_argument("--select", type=int, default=1000, help="items per bulk action")
    parser.add_argument("--leased", type=int, default=50, help="of them leased to another")
    parser.add_argument("--gold", type=int, default=20, help="of them gold items")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


def setup(args: argparse.Namespace) -> tuple[int, str, int]:
    """(project id, the admin's API token, the other labeler's id)."""
    from django.contrib.auth import get_user_model

    from annotator.models import Item, Membership, Project
    from annotator.services.tokens import api_token_create

    users = get_user_model().objects
    project = Project.objects.create(name="Bench bulk labels")
    admin = users.create_user("lead", is_staff=True, is_superuser=True)
    other = users.create_user("labeler")
    Membership.objects.create(project=project, user=other)
    rng = random.Random(5)
    Item.objects.bulk_create(
        [Item(project=project, raw_text=f"review {i}", text=f"review {i}",
              content_hash=f"{i:064x}", random_key=rng.random()) for i in range(args.pool)],
        batch_size=5000)
    return project.pk, api_token_create(user=admin), other.pk


def prepare_round(project_id: int, other_id: int, rng: random.Random,
                  args: argparse.Namespace) -> tuple[list[int], set[int], set[int]]:
    """A selection of open, unlabeled items: (ids, those leased to the other, the gold ones)."""
    from django.utils import timezone

    from annotator.models import Item

    open_ids = list(Item.objects.filter(project_id=project_id, split=Item.Split.POOL,
                                        annotation_count=0, leased_to__isnull=True)
                    .values_list("pk", flat=True))
    ids = rng.sample(open_ids, args.select)
    leased, gold = set(ids[:args.leased]), set(ids[args.leased:args.leased + args.gold])
    Item.objects.filter(pk__in=leased).update(
        leased_to_id=other_id, lease_expires_at=timezone.now() + timedelta(hours=1))
    Item.objects.filter(pk__in=gold).update(split=Item.Split.GOLD, gold_label="negative")
    rng.shuffle(ids)
    return ids, leased, gold


def state(ids: list[int]) -> dict:
    """What a bulk action may change, per item, and every annotation on them."""
    from annotator.models import Annotation, Item

    items = {row["pk"]: row for row in Item.objects.filter(pk__in=ids).values(
        "pk", "annotation_count", "leased_to_id", "lease_expires_at", "split")}
    notes = sorted(Annotation.objects.filter(item_id__in=ids)
                   .values_list("item_id", "labeler_id", "label"))
    return {"items": items, "annotations": notes}


def run(args: argparse.Namespace) -> dict:
    from annotator.models import Annotation

    project_id, token, other_id = setup(args)
    rng = random.Random(11)
    label_seconds, undo_seconds, problems = [], [], []
    env = support.server_env(args, os.environ["ANNOTATOR_VAR_DIR"])
    with support.gunicorn(env, args.workers, 2) as (base, _):
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        api = f"{base}/api/projects/{project_id}/bulk-labels/"
        session.get(api, timeout=60).raise_for_status()  # warm: imports, connections
        for round_no in range(args.rounds):
            ids, leased, gold = prepare_round(project_id, other_id, rng, args)
            before = state(ids)
            started = time.perf_counter()
            answer = session.post(api, json={"item_ids": ids, "label": "positive",
                                             "query": {"bench": round_no}}, timeout=120)
            label_seconds.append(time.perf_counter() - started)
            answer.raise_for_status()
            body = answer.json()
            eligible = set(ids) - leased - gold
            made = set(Annotation.objects.filter(bulk_labeling_id=body["bulk"]["id"],
                                                 picked_by="bulk")
                       .values_list("item_id", flat=True))
            if made != eligible:
                problems.append(f"round {round_no}: labeled {len(made)}, eligible {len(eligible)}")
            skipped = {i for found in body["skipped_items"].values() for i in found}
            if skipped != leased | gold:
                problems.append(f"round {round_no}: skipped {len(skipped)} reported, "
                                f"{len(leased | gold)} leased or gold")
            started = time.perf_counter()
            undo = session.post(f"{api}{body['bulk']['id']}/undo", timeout=120)
            undo_seconds.append(time.perf_counter() - started)
            undo.raise_for_status()
            if state(ids) != before:
                problems.append(f"round {round_no}: undo did not restore the state before")
    return {"database": args.database_url.split("://")[0], "pool": args.pool,
            "select": args.select, "leased": args.leased, "gold": args.gold,
            "rounds": args.rounds,
            "label_s_median": round(statistics.median(label_seconds), 3),
            "label_s_max": round(max(label_seconds), 3),
            "undo_s_median": round(statistics.median(undo_seconds), 3),
            "undo_s_max": round(max(undo_seconds), 3),
            "problems": problems}


if __name__ == "__main__":
    arguments = parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-bulk-labels-")
    os.environ.update(support.server_env(arguments, var_dir))
    support.create_database(arguments.database_url)
    support.migrate(dict(os.environ))
    support.setup_django()
    result = run(arguments)
    print(json.dumps(result, indent=2))
    if not arguments.keep_db:
        from django.db import connections

        connections.close_all()
        support.drop_database(arguments.database_url)
    if result["problems"]:
        raise SystemExit("the bulk actions were not exact (see problems)")
