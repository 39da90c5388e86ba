"""Search by meaning and "more like this" at scale: request latency through the REST API.

    python -m bench.meaning_search --items 100000                       # SQLite (a file)
    python -m bench.meaning_search --items 100000 --database-url postgres://postgres@127.0.0.1:5432/bench_meaning
    python -m bench.meaning_search --items 1000000 --database-url ... --typed 0

A throwaway database gets one project with --items pool items and a stored embedding for
each (random unit vectors of the default encoder's width, written as the fast loop writes
them: the cost of an exact search does not depend on what the vectors mean). It reports the
time to build the shared index file (the first search on a machine), then p50/p95 of
GET /api/projects/<id>/items/<id>/similar/ ("more like this", k=50) and of
GET /api/projects/<id>/search/meaning/?q=... (a typed query, English and Chinese, embedded by
the real default encoder in the web process), served in-process by Django's test client.
"""

import argparse
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time

from bench.support import create_database, drop_database, migrate, percentile

QUERIES = ["fits great, very comfortable", "the zipper broke after a week", "物流太慢了",
           "质量很好，非常满意", "runs small, order a size up", "颜色和图片不一样"]


def _setup(args, var_dir: str) -> None:
    os.environ.update(DATABASE_URL=args.database_url, ANNOTATOR_VAR_DIR=var_dir,
                      SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="testserver",
                      LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="annotator.settings",
                      HF_HUB_OFFLINE="1")
    # the converted default model, made once per machine (as the tests keep it)
    os.environ.setdefault("ANNOTATOR_MODEL_DIR",
                          os.path.expanduser("~/.cache/sentiment-annotator/models"))
    if args.database_url.startswith("postgres"):
        create_database(args.database_url)
    migrate(dict(os.environ))
    from bench.support import setup_django

    setup_django()


def _fill(n: int, dim: int, seed: int):
    import hashlib

    import numpy as np
    from django.contrib.auth import get_user_model

    from annotator.models import Item, Project
    from annotator.services.pool_embeddings import embeddings_write, encoder_key

    project = Project.objects.create(name="bench meaning")
    user = get_user_model().objects.create_user("bench", is_staff=True)
    rng = np.random.default_rng(seed)
    key, batch = encoder_key(project), 5000
    for start in range(0, n, batch):
        texts = [f"review {i}: {random.choice(QUERIES)}"
                 for i in range(start, min(n, start + batch))]
        items = Item.objects.bulk_create(
            [Item(project=project, text=t, raw_text=t,
                  content_hash=hashlib.sha256(t.encode()).hexdigest()) for t in texts])
        ids = [item.pk for item in items]
        if ids[0] is None:  # a backend that does not return ids
            ids = list(Item.objects.filter(project=project).order_by("-pk")
                       .values_list("pk", flat=True)[:len(items)])[::-1]
        emb = rng.standard_normal((len(ids), dim)).astype(np.float32)
        for chunk in range(0, len(ids), 2000):
            embeddings_write(project, key, ids[chunk:chunk + 2000], emb[chunk:chunk + 2000])
        print(f"  {min(n, start + batch):,} items", flush=True)
    return project, user


def _timed(client, url: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.content[:300]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--requests", type=int, default=200, help="per kind of request")
    parser.add_argument("--typed", type=int, default=60, help="typed queries (0: none)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-meaning-")
    args.database_url = args.database_url or f"sqlite:///{var_dir}/bench.sqlite3"
    try:
        _setup(args, var_dir)
        from django.test import Client

        from annotator.models import Item
        from annotator.services import similarity

        print(f"filling {args.items:,} items ({args.database_url.split(':')[0]})", flush=True)
        started = time.perf_counter()
        project, user = _fill(args.items, args.dim, args.seed)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        similarity.vector_index(project)
        build_s = time.perf_counter() - started
        client = Client()
        client.force_login(user)
        ids = list(Item.objects.filter(project=project).values_list("pk", flat=True))
        picks = random.Random(args.seed).sample(ids, min(args.requests, len(ids)))
        like = []
        for item_id in picks:
            like += _timed(client, f"/api/projects/{project.pk}/items/{item_id}/similar/", 1)
        rows = [("more like this, k=50", like)]
        if args.typed:
            started = time.perf_counter()
            similarity.query_vector(project, "warm up")
            load_s = time.perf_counter() - started
            typed = []
            for n in range(args.typed):
                q = QUERIES[n % len(QUERIES)] + f" {n}"
                typed += _timed(client, f"/api/projects/{project.pk}/search/meaning/?q={q}", 1)
            rows.append((f"typed query, k=50 (encoder load {load_s:.1f} s, once per process)",
                         typed))
        print(f"\n{args.items:,} items on {args.database_url.split(':')[0]}: filled in "
              f"{fill_s:.0f} s; index file built in {build_s:.1f} s (first search on a "
              "machine)\n")
        print("| request | n | p50 ms | p95 ms | mean ms |\n|---|---|---|---|---|")
        for name, times in rows:
            print(f"| {name} | {len(times)} | {percentile(times, 50):.1f} | "
                  f"{percentile(times, 95):.1f} | {statistics.mean(times):.1f} |")
    finally:
        if args.database_url.startswith("postgres"):
            from django.db import connections

            connections.close_all()
            drop_database(args.database_url)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
