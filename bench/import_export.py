"""Import / export benchmark on PostgreSQL.

    python -m bench.import_export --rows 100000 1000000 --export-rows 100000

Creates (and at the end drops) its own database `bench_import` on the server of
--database-url, migrates it, then for each size: writes a CSV of generated short
reviews (English and Chinese, some HTML / emoji, ~1% duplicates) to a temp file
and imports it in a child process, which reports its own rows/s and peak RSS
(ru_maxrss). The export step imports --export-rows rows, gives each one an
annotation and times streaming the labeled-only JSONL and CSV exports.
"""

import argparse
import csv
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.support import ROOT, create_database, drop_database, migrate, setup_django

EN_OPENERS = ["Honestly", "Overall", "Well", "So far", "After a week", "To be fair", "Sadly", "Wow"]
EN_PRODUCTS = [
    "running shoes",
    "phone case",
    "rice cooker",
    "desk lamp",
    "backpack",
    "earbuds",
    "water bottle",
    "wool scarf",
    "coffee grinder",
    "keyboard",
    "yoga mat",
    "kettle",
]
EN_VERDICTS = [
    "works great",
    "broke after two days",
    "is okay for the price",
    "arrived late",
    "feels cheap",
    "exceeded my expectations",
    "does what it says",
    "smells strange",
    "is exactly as pictured",
    "stopped charging",
    "fits perfectly",
    "is too small",
]
ZH_PRODUCTS = [
    "运动鞋",
    "手机壳",
    "电饭煲",
    "台灯",
    "双肩包",
    "蓝牙耳机",
    "保温杯",
    "围巾",
    "咖啡机",
    "键盘",
]
ZH_VERDICTS = [
    "质量很好",
    "用了两天就坏了",
    "性价比一般",
    "物流太慢",
    "做工粗糙",
    "超出预期",
    "和图片一样",
    "有异味",
    "尺码偏小",
    "客服态度很好",
]
ZH_TAILS = ["推荐购买", "不会再买了", "还可以", "下次还来", "差评", "五星好评"]
EMOJI = ["", "", "", " 👍", " 😡", " 😍", " 🙂"]


def synthetic_text(i: int) -> str:
    rng = random.Random(i)
    if rng.random() < 0.5:
        text = (
            f"{rng.choice(EN_OPENERS)}, the {rng.choice(EN_PRODUCTS)} {rng.choice(EN_VERDICTS)}"
            f"{rng.choice(EMOJI)} (order {i})"
        )
    else:
        text = (
            f"{rng.choice(ZH_PRODUCTS)}{rng.choice(ZH_VERDICTS)}，{rng.choice(ZH_TAILS)}"
            f"{rng.choice(EMOJI)}（订单{i}）"
        )
    if rng.random() < 0.05:
        text = f"<p>{text}</p>"
    return text


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "brand"])
        for i in range(rows):
            source = rng.randrange(i) if i > 10 and rng.random() < 0.01 else i  # ~1% duplicates
            writer.writerow(
                [
                    f"r{i}",
                    synthetic_text(source + seed * rows),
                    rng.choice(["acme", "zenith", "小米", "north"]),
                ]
            )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_import(path: str, project_name: str) -> dict:
    setup_django()
    from annotator.models import Project
    from annotator.services.importing import import_file

    project, _ = Project.objects.get_or_create(name=project_name)
    before = project.items.count()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    job = import_file(project=project, path=path, id_column="id", meta_columns=["brand"])
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    rows = job.imported + job.duplicates + job.rejected
    return {
        "items_before": before,
        "rows": rows,
        "imported": job.imported,
        "duplicates": job.duplicates,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "importer_cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def child_export(path: str, project_name: str) -> dict:
    setup_django()
    from django.contrib.auth import get_user_model

    from annotator.models import Annotation, Item, Project
    from annotator.services.exporting import export_rows
    from annotator.services.importing import import_file

    project = Project.objects.create(name=project_name)
    import_file(project=project, path=path, id_column="id", meta_columns=["brand"])
    user = get_user_model().objects.create_user(f"bench-{project_name}")
    labels = project.label_names
    batch = []
    for n, item_id in enumerate(
        Item.objects.filter(project=project).values_list("id", flat=True).iterator()
    ):
        batch.append(
            Annotation(
                item_id=item_id,
                labeler=user,
                label=labels[n % len(labels)],
                picked_by="uncertainty",
                strategy="margin",
                predicted_label=labels[0],
                predicted_confidence=0.61,
                seconds_spent=4.2,
            )
        )
        if len(batch) == 5000:
            Annotation.objects.bulk_create(batch)
            batch = []
    Annotation.objects.bulk_create(batch)
    result = {}
    for fmt in ("jsonl", "csv"):
        started = time.perf_counter()
        count = size = 0
        for piece in export_rows(project=project, fmt=fmt, labeled_only=True):
            count += 1
            size += len(piece)
        seconds = time.perf_counter() - started
        rows = count - (1 if fmt == "csv" else 0)
        result[fmt] = {
            "rows": rows,
            "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds),
            "mb": round(size / 1e6, 1),
        }
    result["peak_rss_mb"] = round(peak_rss_mb())
    return result


def run_child(kind: str, path: Path, project_name: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.import_export", "_child", kind, str(path), project_name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"{kind} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument(
        "--more-rows",
        type=int,
        default=100_000,
        help="then import this many new rows into the largest (non-empty) project",
    )
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/test")
    parser.add_argument("--db-name", default="bench_import")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    bench_url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{args.db_name}"))
    create_database(bench_url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ANNOTATOR_VAR_DIR": str(tmp / "var"),
        "DJANGO_SETTINGS_MODULE": "annotator.settings",
        "PYTHONPATH": str(ROOT),
    }
    try:
        migrate(env)

        def bench_import(rows: int, seed: int, project_name: str) -> None:
            path = tmp / f"rows-{rows}.csv"
            write_csv(path, rows, seed=seed)
            result = run_child("import", path, project_name, env)
            result["file_mb"] = round(path.stat().st_size / 1e6, 1)
            result["load_avg_1m"] = round(os.getloadavg()[0], 1)
            print(json.dumps({"import": result}), flush=True)
            path.unlink()

        for rows in args.rows:
            bench_import(rows, 0, f"import-{rows}")
        if args.more_rows and args.rows:
            largest = max(args.rows)
            seed = -(-largest // args.more_rows)  # texts after the largest file's
            bench_import(args.more_rows, seed, f"import-{largest}")
        if args.export_rows:
            path = tmp / "export.csv"
            write_csv(path, args.export_rows, seed=1)
            result = run_child("export", path, "export", env)
            result["load_avg_1m"] = round(os.getloadavg()[0], 1)
            print(json.dumps({"export": result}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep_db:
            drop_database(bench_url)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        _, _, kind, file_path, name = sys.argv
        work = child_import if kind == "import" else child_export
        print(json.dumps(work(file_path, name)))
    else:
        main()
