"""Text search at 100k items, SQLite and PostgreSQL side by side (selectors/search.py).

    python -m bench.search                                  # both, 100,000 items
    python -m bench.search --items 100000 --queries 30 \\
        --database-url postgres://postgres@127.0.0.1:5432/postgres

For each database (SQLite: a file in a temp dir; PostgreSQL: a database `bench_search`
created and dropped on the server of --database-url) a child process builds one project of
--items generated review-like texts (English, Chinese and mixed; 1% gold), labels of four
labelers on 10% and an active version's predictions on 30% of them, with the text index
dropped. It times the insert of --more rows, the index build over the existing rows
(migration 0021's own statements), --more rows again with the index, then --queries
searches of each kind as a manager runs them: the first page of 50
(`list(items_search(...)[:50])`) and the count of all matches (what a paginated page adds).
EXPLAIN of one query per kind shows which index answers it. p50/p95 in milliseconds.
"""

import argparse
import itertools
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.support import ROOT, create_database, drop_database, percentile

PAGE = 50
EN_PRODUCTS = ["shoes", "jacket", "phone case", "charger", "backpack", "dress", "headphones",
               "water bottle", "keyboard", "lamp", "sneakers", "coat"]
EN_GOOD = ["fits well", "great quality", "arrived fast", "very comfortable", "love the color",
           "works as described", "good value for money", "my daughter loves it"]
EN_BAD = ["terrible quality", "broke after a week", "runs small", "the zipper broke",
          "stopped charging", "smells of plastic", "not as pictured", "late delivery"]
ZH_PRODUCTS = ["鞋子", "外套", "手机壳", "充电器", "背包", "裙子", "耳机", "水杯", "键盘", "台灯"]
ZH_GOOD = ["质量很好", "物流很快", "穿着很舒服", "颜色好看", "性价比高", "和描述一致", "好评",
           "非常满意", "包装很好"]
ZH_BAD = ["质量很差", "用了一周就坏了", "尺码偏小", "拉链坏了", "不推荐", "有异味", "和图片不一样",
          "物流太慢了", "差评"]
LABELS = ["negative", "neutral", "positive"]


def review(rng: random.Random, n: int) -> str:
    """One generated review: English, Chinese, or mixed (a tenth), 20 to 250 characters."""
    kind = rng.random()
    if kind < 0.45:
        product = rng.choice(EN_PRODUCTS)
        parts = rng.sample(EN_GOOD if rng.random() < 0.6 else EN_BAD, rng.randint(1, 3))
        text = f"The {product}: {', '.join(parts)}."
        if rng.random() < 0.5:
            text += f" Ordered size {rng.randint(34, 46)}, it took {rng.randint(2, 14)} days."
        if rng.random() < 0.3:
            text += f" Would {'' if rng.random() < 0.5 else 'not '}buy again from this store."
    elif kind < 0.9:
        product = rng.choice(ZH_PRODUCTS)
        parts = rng.sample(ZH_GOOD if rng.random() < 0.6 else ZH_BAD, rng.randint(1, 3))
        text = f"这个{product}{'，'.join(parts)}。"
        if rng.random() < 0.5:
            days = rng.randint(2, 9)
            text += f"买了{days}天，{rng.choice(['还会再来', '客服态度不错', '一般般'])}。"
    else:
        text = (f"{rng.choice(ZH_PRODUCTS)} {rng.choice(EN_GOOD + EN_BAD)}, "
                f"{rng.choice(ZH_GOOD + ZH_BAD)}!")
    return f"{text} #{n}" if rng.random() < 0.2 else text


def queries(rng: random.Random, count: int, texts: list[str]) -> dict[str, list[dict]]:
    """`count` searches of each kind: common words and rare substrings of real texts."""
    def substring(chinese: bool, size: int) -> str:
        """A piece of a real text: Chinese characters only, or ASCII letters and spaces."""
        while True:
            text = rng.choice(texts)
            start = rng.randrange(max(1, len(text) - size))
            piece = text[start:start + size]
            wanted = (all("\u4e00" <= ch <= "\u9fff" for ch in piece) if chinese else
                      piece.isascii() and piece.replace(" ", "").isalpha())
            if len(piece) == size and wanted and piece.strip() == piece:
                return piece

    def pick(common: list[str], chinese: bool, size: int) -> list[str]:
        return [rng.choice(common) if i % 2 else substring(chinese, size) for i in range(count)]

    en = pick([w for w in EN_PRODUCTS + EN_GOOD + EN_BAD if len(w) >= 3], False, 7)
    zh3 = pick([w for w in ZH_GOOD + ZH_BAD if len(w) >= 3], True, 4)
    zh2 = pick(["好评", "差评", "质量", "物流", "舒服", "鞋子", "偏小", "异味"], True, 2)
    zh1 = [rng.choice("好差快慢坏") for _ in range(count)]
    return {
        "English, 3+ characters": [{"query": q} for q in en],
        "Chinese, 3+ characters": [{"query": q} for q in zh3],
        "Chinese, 2 characters": [{"query": q} for q in zh2],
        "Chinese, 1 character": [{"query": q} for q in zh1],
        "English, 3+, newest first": [{"query": q, "sort": "newest"} for q in en],
        "English, 3+, in half of the texts (worst case)": [
            {"query": rng.choice(["the", "The", "the "])} for _ in range(count)],
        "3+ characters + label + prediction + meta": [
            {"query": q, "label": rng.choice(LABELS), "predicted_label": rng.choice(LABELS),
             "confidence_min": 0.5, "meta": {"store": rng.choice(["tmall", "jd"])}}
            for q in en[:count // 2] + zh3[:count - count // 2]],
        "filters only (label + prediction)": [
            {"label": rng.choice(LABELS), "predicted_label": rng.choice(LABELS),
             "confidence_min": 0.6} for _ in range(count)],
    }


def fill(n: int, seed: int):
    """One project of n items (the text index dropped by the caller), labels, predictions."""
    from django.contrib.auth import get_user_model

    from annotator.models import Annotation, Item, ModelVersion, Prediction, Project

    rng = random.Random(seed)
    project = Project.objects.create(name="bench search")
    Item.objects.bulk_create([
        Item(project=project, raw_text=text, text=text, content_hash=str(i),
             random_key=rng.random(), split="gold" if i % 100 == 0 else "pool",
             meta={"store": rng.choice(["tmall", "jd"])})
        for i, text in enumerate(review(rng, i) for i in range(n))], batch_size=5000)
    ids = list(Item.objects.filter(project=project).values_list("pk", flat=True))
    labelers = [get_user_model().objects.create_user(f"labeler{i}") for i in range(4)]
    Annotation.objects.bulk_create([
        Annotation(item_id=item_id, labeler=rng.choice(labelers), label=rng.choice(LABELS))
        for item_id in rng.sample(ids, n // 10)], batch_size=5000)
    version = ModelVersion.objects.create(project=project, version=1, artifact_path="v1",
                                          label_names=LABELS, base_model="m", is_active=True)
    predicted = rng.sample(ids, n * 3 // 10)
    Prediction.objects.bulk_create([
        Prediction(item_id=item_id, model_version=version, label=LABELS[top],
                   probabilities=[p if k == top else (1 - p) / 2 for k in range(3)],
                   uncertainty=1 - p)
        for item_id in predicted
        for top, p in [(rng.randrange(3), rng.uniform(0.34, 0.99))]], batch_size=5000)
    Item.objects.filter(pk__in=predicted[:5000]).update(scored_version=version)
    return project, get_user_model().objects.create_user("bench-admin", is_staff=True)


def explain(queryset) -> str:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def run_one(args) -> dict:
    """In a child process: one database, everything timed; returns the figures."""
    os.environ.update(DATABASE_URL=args.one, ANNOTATOR_VAR_DIR=tempfile.mkdtemp(
        prefix="bench-search-"), SECRET_KEY=secrets.token_urlsafe(50), LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="annotator.settings")
    from bench.support import setup_django

    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from annotator.models import Item
    from annotator.selectors.search import items_search

    migration = import_module("annotator.migrations.0021_item_text_search")
    call_command("migrate", verbosity=0)
    with connection.schema_editor() as editor:
        migration.drop_text_index(None, editor)
    start = time.perf_counter()
    project, admin = fill(args.items - 2 * args.more, seed=0)
    filled = time.perf_counter() - start
    rng, numbers = random.Random(1), itertools.count(args.items)

    def insert_more() -> float:
        """Seconds to insert --more items (bulk_create in batches of 5,000)."""
        rows = [Item(project=project, raw_text=text, text=text, content_hash=str(n))
                for n in itertools.islice(numbers, args.more) for text in [review(rng, n)]]
        start = time.perf_counter()
        Item.objects.bulk_create(rows, batch_size=5000)
        return time.perf_counter() - start

    without_index = insert_more()
    start = time.perf_counter()
    with connection.schema_editor() as editor:  # what migration 0021 runs on existing rows
        migration.create_text_index(None, editor)
    built = time.perf_counter() - start
    with_index = insert_more()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum does after a big insert
    texts = list(Item.objects.order_by("pk").values_list("text", flat=True)[:20000])
    result = {"vendor": connection.vendor, "items": Item.objects.count(),
              "fill_seconds": filled, "index_seconds": built,
              "rows_per_second_without_index": args.more / without_index,
              "rows_per_second_with_index": args.more / with_index, "kinds": {}}
    print(f"{connection.vendor}: filled in {filled:.0f} s, index built in {built:.1f} s",
          file=sys.stderr, flush=True)
    for kind, searches in queries(random.Random(2), args.queries, texts).items():
        print(f"{connection.vendor}: {kind}", file=sys.stderr, flush=True)
        list(items_search(project=project, user=admin, **searches[0])[:PAGE])  # warm up
        page_ms, count_ms, matches = [], [], []
        for search in searches:
            found = items_search(project=project, user=admin, **search)
            start = time.perf_counter()
            list(found[:PAGE])
            page_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            matches.append(found.count())
            count_ms.append((time.perf_counter() - start) * 1000)
        result["kinds"][kind] = {
            "page_p50": percentile(page_ms, 50), "page_p95": percentile(page_ms, 95),
            "count_p50": percentile(count_ms, 50), "count_p95": percentile(count_ms, 95),
            "matches_p50": percentile(matches, 50), "matches_max": max(matches),
            "example": searches[0],
            "plan": explain(items_search(project=project, user=admin, **searches[0])[:PAGE]),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--more", type=int, default=10_000,
                        help="of them, inserted (timed) before and again after the index")
    parser.add_argument("--queries", type=int, default=30, help="searches of each kind")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server ('' for SQLite only)")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # the child's database
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args), ensure_ascii=False))
        return
    urls = [f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-search-')) / 'search.sqlite3'}"]
    if args.database_url:
        urls.append(urlunsplit(urlsplit(args.database_url)._replace(path="/bench_search")))
    results, args.load_before = [], os.getloadavg()[0]
    for url in urls:
        create_database(url)
        try:
            child = subprocess.run(
                [sys.executable, "-m", "bench.search", "--items", str(args.items), "--more",
                 str(args.more), "--queries", str(args.queries), "--one", url],
                cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
        finally:
            drop_database(url)
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    report(results, args)


def report(results: list[dict], args) -> None:
    names = [r["vendor"] for r in results]
    print(f"# {args.items:,} items, {args.queries} searches per kind, first page of {PAGE}; "
          f"load average {args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after; ms")
    print(f"{'':45}" + "".join(f"{name + ' page p50/p95':>24}{'count p50/p95':>16}"
                                  for name in names) + "   matches p50 (max)")
    for kind in results[0]["kinds"]:
        row = f"{kind:45}"
        for result in results:
            k = result["kinds"][kind]
            row += f"{k['page_p50']:>15.1f} / {k['page_p95']:<6.1f}"
            row += f"{k['count_p50']:>8.1f} / {k['count_p95']:<6.1f}"
        k = results[0]["kinds"][kind]
        print(f"{row}   {k['matches_p50']:,} ({k['matches_max']:,})")
    for result in results:
        print(f"\n## {result['vendor']}: {result['items']:,} items; index built over the "
              f"existing {args.items - args.more:,} rows in {result['index_seconds']:.1f} s; "
              f"inserting {args.more:,} rows: {result['rows_per_second_without_index']:,.0f} "
              f"rows/s before the index, {result['rows_per_second_with_index']:,.0f} with it")
        for kind, k in result["kinds"].items():
            print(f"\n### {kind}: {json.dumps(k['example'], ensure_ascii=False)}")
            print(k["plan"])


if __name__ == "__main__":
    main()
