"""20 labelers label on the embedded default (SQLite, gunicorn) while a big import runs.

Same database, server and simulated labelers as bench/labeling_load.py. Two phases in one
run, so the figures compare side by side on a noisy machine:

1. baseline: the labelers alone for --baseline-seconds;
2. import: `manage.py import_items` (the code a worker runs for an upload) imports a
   generated CSV of --import-rows reviews (~240 bytes each, 60 MB at 250k) into the project
   being labeled, and the labelers go on until it has finished.

Reports, per phase, errors (any non-200 answer or exception) and client / server p50, p95,
p99, max; the import's wall time and rows/s; and checks that no submit was lost.

    python -m bench.import_while_labeling                     # SQLite, 250k rows, 20 labelers
    python -m bench.import_while_labeling --import-rows 50000 --think-ms 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import labeling_load as load
from bench import support

WORDS = ("great bad fine sole size colour delivery refund comfy cheap broke love arrived late "
         "box seller fits small large returned again quality price 质量 很好 物流 太慢").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url", default="sqlite:////tmp/bench_import_labeling.sqlite3")
    parser.add_argument("--items", type=int, default=20_000, help="pool before the import")
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--import-rows", type=int, default=250_000)
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--think-ms", type=float, default=1000,
                        help="pause between items (1 s: a fast human; 0: flat out)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (bin/up: 3)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (bin/up: 4)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="ANNOTATOR_IMPORT_BATCH_SIZE for the import (0: the default)")
    parser.add_argument("--import-nice", type=int, default=None,
                        help="ANNOTATOR_IMPORT_NICE for the import (default: the setting's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.overlap_percent, args.max_per_labeler, args.port, args.keep_db = 10, 10**9, 0, False
    args.seconds = args.baseline_seconds
    return args


def write_csv(path: Path, rows: int) -> int:
    rng = random.Random(11)
    with open(path, "w", encoding="utf-8") as out:
        out.write("id,text,product\n")
        for i in range(rows):
            words = " ".join(rng.choices(WORDS, k=rng.randint(30, 45)))
            out.write(f"r{i},\"imported review {i}: {words}\",SKU-{i % 700}\n")
    return path.stat().st_size


def run_phase(labelers: list[load.Labeler], until) -> dict:
    """Run fresh threads for the labelers (sessions kept) until `until()` says stop."""
    threads = []
    for old in labelers:
        fresh = load.Labeler(old.base, old.username, 0, old.args)
        fresh.urls, fresh.session, fresh.item, fresh.rng = old.urls, old.session, old.item, old.rng
        fresh.deadline = float("inf")
        threads.append(fresh)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while not until(time.monotonic() - started):
        time.sleep(0.2)
    for thread in threads:
        thread.deadline = 0
    for thread in threads:
        thread.join()
    for old, new in zip(labelers, threads, strict=True):
        old.item = new.item
    client = [ms for t in threads for ms in t.client_ms]
    server = [ms for t in threads for ms in t.server_ms]
    errors = [e for t in threads for e in t.errors]
    quantiles = {q: round(support.percentile(client, q) or 0, 1) for q in (50, 95, 99)}
    return {
        "seconds": round(time.monotonic() - started, 1),
        "requests": len(client),
        "submits_counted": sum(t.submitted for t in threads),
        "errors": len(errors),
        "first_errors": errors[:3],
        "client_ms": {**quantiles, "max": round(max(client, default=0), 1)},
        "server_ms": {q: round(support.percentile(server, q) or 0, 1) for q in (50, 95, 99)},
    }


def main() -> None:
    args = parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-import-")
    env = support.server_env(args, var_dir)
    env["ANNOTATOR_SERVER_TIMING"] = "1"
    os.environ.update(env)
    csv_path = Path(var_dir) / "import.csv"
    size = write_csv(csv_path, args.import_rows)
    print(f"import file: {args.import_rows} rows, {size / 2**20:.1f} MB", flush=True)

    support.create_database(args.database_url)
    support.migrate(env)
    support.setup_django()
    project_id, usernames = load.seed(args)
    with support.gunicorn(env, args.workers, args.threads,
                          extra=("--keep-alive", "30")) as (base, _):  # as bin/up
        labelers = [load.Labeler(base, name, project_id, args) for name in usernames]
        for labeler in labelers:
            labeler.login()
        print("phase 1: labelers alone", flush=True)
        baseline = run_phase(labelers, lambda elapsed: elapsed >= args.baseline_seconds)
        print(f"phase 2: labelers + import of {args.import_rows} rows", flush=True)
        import_env = dict(env)
        if args.batch_size:
            import_env["ANNOTATOR_IMPORT_BATCH_SIZE"] = str(args.batch_size)
        if args.import_nice is not None:
            import_env["ANNOTATOR_IMPORT_NICE"] = str(args.import_nice)
        importer = subprocess.Popen(
            [sys.executable, "manage.py", "import_items", str(project_id), str(csv_path),
             "--id-column", "id", "--meta-column", "product", "--no-progress"],
            cwd=support.ROOT, env=import_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        import_started = time.monotonic()
        during = run_phase(labelers, lambda elapsed: importer.poll() is not None)
        import_seconds = time.monotonic() - import_started
        out, err = importer.communicate()
    invariants = load.check_invariants(project_id)
    submitted = baseline["submits_counted"] + during["submits_counted"]
    results = {
        "database": args.database_url.split(":", 1)[0],
        "labelers": args.labelers,
        "think_ms": args.think_ms,
        "gunicorn": f"{args.workers} workers x {args.threads} threads",
        "pool_before_import": args.items,
        "import": {"rows": args.import_rows, "mb": round(size / 2**20, 1),
                   "batch_size": args.batch_size or "default",
                   "nice": "default" if args.import_nice is None else args.import_nice,
                   "exit": importer.returncode, "output": (out.strip() or err.strip())[-300:],
                   "seconds": round(import_seconds, 1),
                   "rows_per_s": round(args.import_rows / import_seconds)},
        "baseline": baseline,
        "during_import": during,
        "p95_ratio_during_vs_baseline": round(
            during["client_ms"][95] / max(baseline["client_ms"][95], 0.1), 2),
        **invariants,
        "lost_annotations": submitted - invariants["annotations"],
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    support.drop_database(args.database_url)


if __name__ == "__main__":
    main()
