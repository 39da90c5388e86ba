"""Push N reviews over HTTP into PostgreSQL through POST /api/projects/<id>/items/.

A real gunicorn server on a fresh database (created, migrated, dropped: the helpers of
bench/support.py), token auth, batches of --batch items (JSON lines), --clients
threads each sending batches one after the other. Every item goes through the API's full
path: parsing, cleaning, dedupe against the project, the bulk writer (COPY). About 2% of the
texts repeat an earlier one, so dedupe has work; a batch answered 409 (a concurrent
batch wrote one of its texts first) is sent again, as a client should. Reports items/s over the whole push.

    python -m bench.api_push                           # 100,000 items, batches of 500
    python -m bench.api_push --items 20000 --clients 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time

import requests

from bench import support

WORDS = ("great bad fine sole size colour delivery refund comfy cheap broke love arrived late "
         "box seller fits small large returned again quality price 质量 很好 物流 太慢").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgres://postgres@127.0.0.1:5432/bench_api_push")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="threads pushing at once")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


def batches(args: argparse.Namespace) -> list[bytes]:
    """JSON-lines bodies; review i reuses an earlier text 2% of the time."""
    rng = random.Random(7)
    rows = []
    for i in range(args.items):
        n = rng.randrange(i) if i and rng.random() < 0.02 else i
        words = " ".join(random.Random(n).choices(WORDS, k=12 + n % 30))
        rows.append(json.dumps({"external_id": f"R{i}", "text": f"<p>Review {n}: {words}</p>",
                                "meta": {"sku": f"SKU-{n % 500}"}}, ensure_ascii=False))
    return ["\n".join(rows[i:i + args.batch]).encode() for i in range(0, len(rows), args.batch)]


def setup_project() -> tuple[int, str]:
    from django.contrib.auth import get_user_model

    from annotator.models import Project
    from annotator.services.tokens import api_token_create

    project = Project.objects.create(name="Bench API push")
    user = get_user_model().objects.create_user("pusher", is_staff=True)
    return project.pk, api_token_create(user=user)


def main() -> None:
    args = parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-api-push-")
    env = support.server_env(args, var_dir)
    os.environ.update(env)
    support.create_database(args.database_url)
    support.migrate(env)
    support.setup_django()
    project_id, token = setup_project()
    bodies = batches(args)
    counts = {"created": 0, "existing": 0, "duplicates": 0, "rejected": 0, "errors": 0,
              "retries": 0}
    lock, queue = threading.Lock(), list(reversed(bodies))

    def client(base: str) -> None:
        session = requests.Session()
        session.headers.update({"Authorization": f"Token {token}",
                                "Content-Type": "application/x-ndjson"})
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            while True:  # 409: a concurrent batch took one of the texts; a retry sorts it out
                response = session.post(f"{base}/api/projects/{project_id}/items/", data=body,
                                        timeout=120)
                if response.status_code != 409:
                    break
                with lock:
                    counts["retries"] += 1
            with lock:
                if response.status_code != 200:
                    counts["errors"] += 1
                    print(response.status_code, response.text[:200], flush=True)
                    continue
                for key in ("created", "existing", "duplicates", "rejected"):
                    counts[key] += response.json()[key]

    with support.gunicorn(env, args.workers, args.threads) as (base, _):
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(base,)) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
    from annotator.models import Item

    stored = Item.objects.filter(project_id=project_id).count()
    result = {**counts, "items": args.items, "batch": args.batch, "clients": args.clients,
              "gunicorn": f"{args.workers} workers x {args.threads} threads",
              "stored": stored, "seconds": round(wall, 1),
              "items_per_s": round(args.items / wall)}
    print(json.dumps(result, indent=2))
    if not args.keep_db:
        from django.db import connections

        connections.close_all()
        support.drop_database(args.database_url)
    if counts["errors"] or stored != counts["created"]:
        raise SystemExit("errors, or stored items differ from those reported created")


if __name__ == "__main__":
    main()
