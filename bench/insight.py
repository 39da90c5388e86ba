"""Dashboard and analytics timing on a large project.

    python -m bench.insight --items 100000 --annotations 20000 --predictions 10000
    python -m bench.insight ... --database-url postgres://postgres@127.0.0.1:5432/postgres

Builds a throwaway database (SQLite in a temp dir, or a database `bench_insight` created
and dropped on the server of --database-url), fills one project with items (five kinds,
a `product` meta field, import dates over 26 weeks), annotations by four labelers over 60
days, five model versions with metrics and predictions of the active one, then times the
dashboard and analytics pages as a project admin sees them (the views, templates
included): first view (cache emptied: no snapshot, computed in the request), after a
change (a new label since the snapshot: the snapshot is served and a refresh queued), and
warm (same data); then the refresh a worker runs, the dashboard read and charts apart,
and the uncached parts of the read. Median of --repeat runs, in milliseconds.
"""

import argparse
import os
import random
import secrets
import statistics
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

from bench.support import create_database, drop_database, setup_django


def fill(n_items: int, n_annotations: int, n_predictions: int):
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotator.models import Annotation, Item, ModelVersion, Prediction, Project

    rng = random.Random(0)
    now = timezone.now()
    labels = ["negative", "neutral", "positive"]
    kinds = ["review", "dialogue", "query", "ad", "social"]
    project = Project.objects.create(name="bench")
    items = [
        Item(project=project, raw_text=f"text {i}", text=f"text {i}", content_hash=str(i),
             kind=rng.choice(kinds), meta={"product": f"product {rng.randrange(200)}"},
             random_key=rng.random(), split="gold" if i % 100 == 0 else "pool")
        for i in range(n_items)
    ]
    Item.objects.bulk_create(items, batch_size=5000)
    ids = list(Item.objects.filter(project=project).values_list("pk", flat=True))
    for start in range(0, len(ids), 5000):  # import dates over 26 weeks
        chunk = ids[start:start + 5000]
        Item.objects.filter(pk__in=chunk).update(created_at=now - timedelta(weeks=rng.randrange(26)))
    users = [get_user_model().objects.create_user(f"labeler{i}") for i in range(4)]
    labeled = rng.sample(ids, n_annotations // 2)
    annotations = []
    for item_id in labeled:
        for user in rng.sample(users, 2):
            annotations.append(Annotation(item_id=item_id, labeler=user, label=rng.choice(labels),
                                          seconds_spent=rng.uniform(2, 20)))
    Annotation.objects.bulk_create(annotations, batch_size=5000)
    annotation_ids = list(Annotation.objects.values_list("pk", flat=True))
    for start in range(0, len(annotation_ids), 500):  # labeled over 60 days
        Annotation.objects.filter(pk__in=annotation_ids[start:start + 500]).update(
            created_at=now - timedelta(days=rng.randrange(60), hours=rng.randrange(24)))
    Item.objects.filter(pk__in=labeled).update(annotation_count=2, required_labels=2)
    cm = [[30, 5, 2], [4, 20, 6], [1, 3, 29]]
    versions = [
        ModelVersion.objects.create(
            project=project, version=v, base_model="m", artifact_path=f"v{v}",
            label_count=1000 * v, is_active=v == 5, duration_seconds=60.0 * v,
            metrics={"macro_f1": 0.5 + 0.05 * v, "accuracy": 0.6, "labels": labels,
                     "evaluated_on": "gold", "confusion_matrix": cm,
                     "per_class": {n: {"precision": 0.8, "recall": 0.7, "f1": 0.75,
                                       "support": 30} for n in labels}})
        for v in range(1, 6)
    ]
    open_ids = sorted(set(ids) - set(labeled))
    Prediction.objects.bulk_create(
        [Prediction(item_id=item_id, model_version=versions[-1], label=rng.choice(labels),
                    probabilities=[0.3, 0.3, 0.4], uncertainty=0.5)
         for item_id in rng.sample(open_ids, n_predictions)], batch_size=5000)
    return project


def timed(fn, repeat: int, setup=None) -> float:
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=20_000)
    parser.add_argument("--predictions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-insight-")
    os.environ["ANNOTATOR_VAR_DIR"] = tmp
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    server_db = ""  # created on the server of --database-url, dropped at the end
    if args.database_url:
        server_db = urlunsplit(urlsplit(args.database_url)._replace(path="/bench_insight"))
        create_database(server_db)
        os.environ["DATABASE_URL"] = server_db
    else:
        os.environ.pop("DATABASE_URL", None)
    setup_django()
    from django.contrib.auth import get_user_model
    from django.core.cache import caches
    from django.core.management import call_command
    from django.db import connection
    from django.test import RequestFactory
    from django.utils import timezone

    from annotator import tasks
    from annotator.lib import charts
    from annotator.models import Annotation, Item
    from annotator.selectors import insight as selectors_insight
    from annotator.services import insight_snapshots
    from annotator.views import insight as views

    try:
        call_command("migrate", verbosity=0)
        start = time.perf_counter()
        project = fill(args.items, args.annotations, args.predictions)
        print(f"# {connection.vendor}: {args.items} items, {args.annotations} annotations, "
              f"{args.predictions} predictions (filled in {time.perf_counter() - start:.0f} s)")
        report = selectors_insight.project_dashboard(project, cached=False)
        tasks.refresh_insight_task.delay = lambda *args: None  # no worker here: timed apart

        class cache:  # noqa: N801 - both caches: the figures' and the pages' snapshots
            clear = staticmethod(lambda: [caches[alias].clear() for alias in caches])
        admin = get_user_model().objects.create_user("bench-admin", is_staff=True,
                                                     is_superuser=True)

        def page(view, **params):
            def get():
                request = RequestFactory().get("/", params)
                request.user = admin
                response = view(request, project_id=project.pk)
                assert response.status_code == 200, response.status_code
            return get

        pages = [("dashboard page", page(views.dashboard))]
        pages += [(f"analytics page by {by}", page(views.analytics, by=by))
                  for by in ("kind", "meta:product", "week")]
        labeler = get_user_model().objects.create_user("bench-labeler")
        open_items = iter(Item.objects.filter(project=project, annotation_count=0)
                          .values_list("pk", flat=True)[:1000])

        def new_label():
            Annotation.objects.create(item_id=next(open_items), labeler=labeler, label="positive")

        rows = []
        for name, get in pages:
            rows.append((f"{name}, first view", get, cache.clear))
            rows.append((f"{name}, after a new label", get, new_label))
            rows.append((f"{name}, warm", get, None))
        rows += [
            ("refresh (worker): dashboard",
             lambda: insight_snapshots.snapshot_refresh(project_id=project.pk, page="dashboard"),
             cache.clear),
            ("refresh (worker): analytics by week",
             lambda: insight_snapshots.snapshot_refresh(project_id=project.pk, page="analytics",
                                                        by="week"),
             cache.clear),
            ("dashboard read, cold", lambda: selectors_insight.project_dashboard(project),
             cache.clear),
            ("dashboard read, warm", lambda: selectors_insight.project_dashboard(project), None),
            ("dashboard charts (5 SVGs), cold", lambda: charts.dashboard_charts(report),
             cache.clear),
            ("dashboard charts (5 SVGs), warm", lambda: charts.dashboard_charts(report), None),
            ("  cache key: human_state", lambda: selectors_insight.human_state(project), None),
            ("  cache key: items_state", lambda: selectors_insight.items_state(project), None),
        ]
        now, active = timezone.now(), report["active"]
        for name, part in [
            ("labels per day", lambda: selectors_insight._labels_over_time(project, now)),
            ("per labeler", lambda: selectors_insight._labelers(project)),
            ("versions", lambda: selectors_insight._versions(project, now)),
            ("queue health", lambda: selectors_insight._queue(project, active, now)),
            ("training runs", lambda: selectors_insight._runs(project)),
            ("agreement", lambda: selectors_insight._agreement(project)),
        ]:
            rows.append((f"  dashboard part (uncached): {name}", part, None))
        for name, fn, setup in rows:
            if setup is None:  # warm: the first call on the data as they are fills the caches
                cache.clear()
                fn()
            print(f"{name:44s} {timed(fn, args.repeat, setup):8.0f} ms", flush=True)
    finally:
        connection.close()
        if server_db:
            drop_database(server_db)


if __name__ == "__main__":
    main()
