"""Pool scoring that scales out: the same pool scored by 1 and by 2 scoring workers.

A database of its own (SQLite in a temp var dir, the embedded default, with the filesystem
broker), migrated. A project gets a real active version of the default model
(multilingual-e5-small, trained here for --train-steps steps with bench/monitoring_latency's
`make_project`) and --items invented pool reviews (en + zh). For each worker count, a new
version with the same weights is activated, N separate
`celery -A annotator worker -Q scoring --concurrency 1 --pool solo` processes are started
(each with --threads torch/ONNX threads) and, once all say "ready", `score_pool_task` fans
the pool out as chunks of --chunk items; the clock stops when the ranking is written.
Both runs happen side by side in one invocation, so the ratio compares like with like.

Reports items/s per worker count, the ratio, the projected time for a 1,000,000-item pool
(items/s scaled by the number of workers), and the load average, as JSON.

    python -m bench.scoring_scaleout                       # 4,000 items, chunks of 500
    python -m bench.scoring_scaleout --items 2000 --chunk 250
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import monitoring_latency as mon
from bench import support


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--items", type=int, default=4000, help="pool items to score")
    parser.add_argument("--chunk", type=int, default=500, help="ANNOTATOR_SCORING_CHUNK_SIZE")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP/torch threads per worker process (1: one core each)")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def start_workers(n: int, env: dict, var_dir: str) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for k in range(n):
        log = Path(var_dir) / f"worker-{n}-{k}.log"
        process = support.celery_worker("scoring", f"bench-scaleout-{n}-{k}-{os.getpid()}@%h",
                                        open(log, "w"), env, pool="solo")
        workers.append((process, log))
    deadline = time.monotonic() + 300
    while not all(" ready." in log.read_text() for _, log in workers):
        if any(p.poll() is not None for p, _ in workers) or time.monotonic() > deadline:
            raise SystemExit("a worker exited or did not become ready; see " + var_dir)
        time.sleep(0.5)
    return workers


def stop_workers(workers) -> None:
    for process, _ in workers:
        process.send_signal(signal.SIGTERM)
    for process, _ in workers:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    args = parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-scaleout-")
    args.database_url = f"sqlite:///{var_dir}/bench.sqlite3"
    env = support.server_env(args, var_dir)
    env.pop("ANNOTATOR_SERVER_TIMING", None)
    env.update(
        ANNOTATOR_MODEL_DIR=os.environ.get("ANNOTATOR_MODEL_DIR")
        or str(Path.home() / ".cache" / "sentiment-annotator" / "models"),
        ANNOTATOR_SCORING_CHUNK_SIZE=str(args.chunk),
        OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
        TQDM_DISABLE="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(support.ROOT),
    )
    os.environ.update(env)
    support.migrate(env)
    support.setup_django()
    from annotator.models import Item, ModelVersion, Project
    from annotator.tasks import score_pool_task

    print("training a quick version of the default model ...", flush=True)
    project_id, made = mon.make_project(argparse.Namespace(train_steps=args.train_steps))
    project = Project.objects.get(pk=project_id)
    project.candidate_pool_size = args.items  # every pool item is a candidate
    project.save()
    import hashlib
    import random

    texts = mon.texts(random.Random(13), 0, args.items)
    Item.objects.bulk_create(
        [Item(project=project, raw_text=t, text=t, random_key=i / args.items,
              content_hash=hashlib.sha256(t.encode()).hexdigest())
         for i, t in enumerate(texts)], batch_size=1000)
    first = ModelVersion.objects.get(project=project, is_active=True)

    runs = []
    for n in [int(w) for w in args.workers.split(",")]:
        ModelVersion.objects.filter(project=project).update(is_active=False)
        last = ModelVersion.objects.filter(project=project).order_by("-version").first()
        version = ModelVersion.objects.create(
            project=project, version=last.version + 1, base_model=first.base_model,
            artifact_path=first.artifact_path, label_names=first.label_names,
            label_count=first.label_count, max_length=first.max_length, is_active=True)
        workers = start_workers(n, env, var_dir)
        try:
            load_before = os.getloadavg()
            started = time.monotonic()
            score_pool_task.delay(version.pk)
            while not Item.objects.filter(project=project, scored_version=version).exists():
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"{n} workers: no ranking after {args.timeout:.0f} s")
                time.sleep(0.5)
            seconds = time.monotonic() - started
        finally:
            stop_workers(workers)
        scored = version.predictions.count()
        rate = scored / seconds
        runs.append({"workers": n, "items_scored": scored, "seconds": round(seconds, 1),
                     "items_per_s": round(rate, 1),
                     "projected_1M_items_h": round(1_000_000 / rate / 3600, 2),
                     "load_avg_1_5_15_before": [round(x, 2) for x in load_before],
                     "load_avg_1_5_15_after": [round(x, 2) for x in os.getloadavg()]})
        print(json.dumps(runs[-1]), flush=True)

    results = {
        "pool_items": args.items, "chunk_size": args.chunk, "threads_per_worker": args.threads,
        "cpu_count": os.cpu_count(), "model": {"name": "multilingual-e5-small", **made},
        "database": "sqlite (embedded default)", "broker": "filesystem (embedded default)",
        "runs": runs,
        "speedup_vs_1_worker": {str(r["workers"]): round(r["items_per_s"]
                                                         / runs[0]["items_per_s"], 2)
                                for r in runs},
        "note": "time = score_pool_task enqueued -> ranking written, model loads included; "
                "1M projection = 1,000,000 / measured items/s for that worker count",
        "command": "python -m bench.scoring_scaleout " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
