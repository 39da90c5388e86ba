"""Live monitoring latency: pushed item -> Prediction stored, at a steady arrival rate.

Issue target: ≤ 5 s p95 on 2 CPU cores with the default model at 20 items/s arriving.

A database of its own (SQLite in a temp var dir, the embedded default; or --database-url
postgres://.../<db>, created and dropped with the helpers of bench/support.py),
migrated. A project gets a real ACTIVE version of the default model (multilingual-e5-small):
`training_request` + `training_run_execute` in this process on ~60 invented labeled
reviews, 1 epoch, --train-steps optimizer steps (the platform's own training path: version
folder in the "artifacts" storage, ModelVersion activated). A real Celery worker
(`celery -A annotator worker -Q scoring --concurrency 1 --pool solo`, same environment:
filesystem broker unless CELERY_BROKER_URL is set) is started, pinged
(annotator.tasks.ping) and warmed by one pushed item going the whole way.

Then --rate items/s for --seconds go through `items_push` (the code behind POST
/api/projects/<id>/items/), --batch items per push on a fixed schedule, English and
Chinese invented texts, all unique. Each push commits and enqueues, as the API does,
`predict_items_task` (and the readability check every push asks for) on the `scoring`
queue. Latency per item = the Prediction row's created_at - the moment its push returned.
Reports p50/p95/max, items predicted, items missing after --grace seconds, the worker's
CPU seconds per item, as JSON.

    python -m bench.monitoring_latency                          # 20 items/s for 60 s
    python -m bench.monitoring_latency --batch 20               # one push of 20 a second
    python -m bench.monitoring_latency --int8 --threads 2
    python -m bench.monitoring_latency --database-url postgres://postgres@127.0.0.1:5432/bench_mon

The converted default model is read from ANNOTATOR_MODEL_DIR (default
~/.cache/sentiment-annotator/models), so nothing is converted or downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import support

EN_WORDS = ("great bad fine sole size colour delivery refund comfy cheap broke love arrived "
            "late box seller fits small large returned again quality price strap zipper "
            "stitching soft itchy faded").split()
ZH_WORDS = ("质量 很好 物流 太慢 卖家 态度 不错 价格 便宜 颜色 好看 尺码 偏小 退货 麻烦 "
            "包装 破损 味道 很大 舒服 推荐 失望 一般 满意").split()
TRAIN_TEXTS = {
    "positive": ["love these shoes, so comfy", "great quality for the price", "fits perfectly",
                 "arrived early and looks great", "soft fabric, would buy again",
                 "质量很好，很满意", "物流很快，推荐", "颜色好看，穿着舒服", "卖家态度很好",
                 "价格便宜质量不错"],
    "negative": ["broke after two days", "terrible stitching, returned it", "way too small",
                 "arrived late and the box was crushed", "faded after one wash",
                 "质量太差了，很失望", "物流太慢了", "尺码偏小，退货麻烦", "包装破损，味道很大",
                 "再也不买了"],
    "neutral": ["it is a shoe", "arrived on tuesday", "colour as in the photo", "average",
                "ok for the price I guess", "一般般吧", "还行", "和图片差不多", "收到了",
                "没什么特别的"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url", default="",
                        help="default: SQLite in the temp var dir; postgres://.../<db> is "
                             "created and dropped")
    parser.add_argument("--rate", type=float, default=20, help="items per second arriving")
    parser.add_argument("--seconds", type=float, default=60, help="how long items arrive")
    parser.add_argument("--batch", type=int, default=2, help="items per push")
    parser.add_argument("--grace", type=float, default=60,
                        help="seconds to wait after the last push for predictions")
    parser.add_argument("--pool", default="solo", choices=["solo", "prefork"])
    parser.add_argument("--threads", type=int, default=0,
                        help="ANNOTATOR_SERVE_THREADS for the worker (0: torch's default)")
    parser.add_argument("--int8", action="store_true", help="ANNOTATOR_SERVE_INT8=1")
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnx"],
                        help="ANNOTATOR_SERVE_RUNTIME")
    parser.add_argument("--train-steps", type=int, default=3,
                        help="optimizer steps of the quick real version")
    parser.add_argument("--skip-readability-check", action="store_true",
                        help="diagnostic: pushes do not queue the readability check (every "
                             "push queues one today, ~1.5 s of worker time each)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the var dir (worker log)")
    return parser.parse_args()


def texts(rng: random.Random, start: int, n: int) -> list[str]:
    """Unique invented reviews, every other one Chinese."""
    out = []
    for i in range(start, start + n):
        if i % 2:
            body = "".join(rng.choices(ZH_WORDS, k=rng.randint(6, 20)))
            out.append(f"订单{i}：{body}。")
        else:
            body = " ".join(rng.choices(EN_WORDS, k=rng.randint(8, 30)))
            out.append(f"order {i}: {body}.")
    return out


def make_project(args) -> tuple[int, dict]:
    """A project with an active version of the default model, trained here for real."""
    import hashlib

    from django.conf import settings

    from annotator.models import Item, Project
    from annotator.services.training import training_request, training_run_execute

    project = Project.objects.create(name="Bench monitoring")
    rows, i = [], 0
    for label, examples in TRAIN_TEXTS.items():
        for text in examples:
            for suffix in ("", " !", " (again)"):
                i += 1
                rows.append(Item(project=project, raw_text=text + suffix, text=text + suffix,
                                 final_label=label, random_key=i / 1000,
                                 content_hash=hashlib.sha256((text + suffix).encode())
                                 .hexdigest()))
    Item.objects.bulk_create(rows)
    settings.TRAINING_OVERRIDES = dict(epochs=1, max_steps=args.train_steps, batch_size=8,
                                       max_length=128, val_fraction=0)
    started = time.monotonic()
    run = training_request(project=project, trigger="command", enqueue=False, force=True)
    version = training_run_execute(run_id=run.pk)
    if version is None:
        from annotator.models import TrainingRun

        raise SystemExit(f"training failed: {TrainingRun.objects.get(pk=run.pk).error}")
    how = (f"training_request + training_run_execute in the bench process: {len(rows)} invented "
           f"labeled reviews (en + zh), 1 epoch, max_steps={args.train_steps}, batch 8, "
           f"max_length 128, {time.monotonic() - started:.0f} s; base "
           f"{version.base_model_source or version.base_model}")
    return project.pk, {"version": version.version, "how_made": how,
                        "max_length": version.max_length}


def wait_for(predicate, timeout: float, what: str, worker) -> float:
    started = time.monotonic()
    while not predicate():
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited ({worker.returncode}) while waiting for {what}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> None:
    args = parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-monitoring-")
    postgres = bool(args.database_url)
    args.database_url = args.database_url or f"sqlite:///{var_dir}/bench.sqlite3"
    env = support.server_env(args, var_dir)
    env.pop("ANNOTATOR_SERVER_TIMING", None)
    env.update(
        ANNOTATOR_MODEL_DIR=os.environ.get("ANNOTATOR_MODEL_DIR")
        or str(Path.home() / ".cache" / "sentiment-annotator" / "models"),
        ANNOTATOR_SERVE_INT8="1" if args.int8 else "0",
        ANNOTATOR_SERVE_RUNTIME=args.runtime,
        ANNOTATOR_SERVE_THREADS=str(args.threads),
        TQDM_DISABLE="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(support.ROOT),
    )
    os.environ.update(env)
    if postgres:
        support.create_database(args.database_url)
    support.migrate(env)
    support.setup_django()
    from annotator.models import Prediction, Project, VocabularyCheck
    from annotator.services.items import items_push
    from annotator.tasks import ping

    if args.skip_readability_check:
        import annotator.services.items as items_module

        items_module.vocabulary_check_request = lambda **_kwargs: None

    print("training a quick version of the default model ...", flush=True)
    project_id, made = make_project(args)
    print(made["how_made"], flush=True)

    log = open(Path(var_dir) / "worker.log", "w")
    worker = support.celery_worker("scoring", f"bench-monitoring-{os.getpid()}@%h", log, env,
                                   loglevel="warning", pool=args.pool)
    rng = random.Random(5)
    results: dict = {}
    try:
        started = time.monotonic()
        answer = ping.apply_async(args=["bench"], queue="scoring").get(timeout=180)
        worker_up = time.monotonic() - started
        print(f"worker answered in {worker_up:.1f} s: {answer}", flush=True)
        project = Project.objects.get(pk=project_id)
        warm = items_push(project=project, rows=[{"text": t} for t in texts(rng, 10**6, 1)])
        warm_id = warm.rows[0]["item_id"]
        warm_s = wait_for(lambda: Prediction.objects.filter(item_id=warm_id).exists(), 600,
                          "the warm-up prediction", worker)
        print(f"warm-up item predicted in {warm_s:.1f} s (model load included)", flush=True)
        time.sleep(2)  # let the warm-up push's readability check finish

        cpu_before = support.process_tree_cpu(worker.pid)
        pushed: dict[int, float] = {}  # item id -> when its push returned (epoch s)
        arrived: dict[int, float] = {}  # item id -> when it arrived at the client (epoch s)
        push_ms, lags = [], []
        pushes = max(1, round(args.rate * args.seconds / args.batch))
        interval = args.batch / args.rate
        t0 = time.monotonic()
        epoch0 = time.time() - (time.monotonic() - t0)
        for k in range(pushes):
            due = t0 + k * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            lags.append(max(0.0, time.monotonic() - due))
            rows = [{"text": t} for t in texts(rng, k * args.batch, args.batch)]
            before = time.perf_counter()
            result = items_push(project=project, rows=rows)
            returned = time.time()
            push_ms.append((time.perf_counter() - before) * 1000)
            for j, row in enumerate(result.rows):
                if row.get("status") == "created":
                    pushed[row["item_id"]] = returned
                    # the j-th item of a batch arrived (batch - 1 - j) / rate before it was due
                    arrived[row["item_id"]] = (epoch0 + k * interval
                                               - (args.batch - 1 - j) / args.rate)
        push_seconds = time.monotonic() - t0
        print(f"pushed {len(pushed)} items in {push_seconds:.1f} s; waiting for predictions",
              flush=True)

        ids = list(pushed)
        deadline = time.monotonic() + args.grace
        done = 0
        while time.monotonic() < deadline:
            done = Prediction.objects.filter(item_id__in=ids).count()
            if done == len(ids):
                break
            time.sleep(0.5)
        drained = time.monotonic() - t0
        cpu = support.process_tree_cpu(worker.pid) - cpu_before
        stored = dict(Prediction.objects.filter(item_id__in=ids)
                      .values_list("item_id", "created_at"))
        latency = sorted(stored[i].timestamp() - pushed[i] for i in ids if i in stored)
        from_arrival = sorted(stored[i].timestamp() - arrived[i] for i in ids if i in stored)
        backlog_seconds = max((stored[i].timestamp() for i in stored), default=0) - max(
            pushed.values())
        checks = VocabularyCheck.objects.filter(project_id=project_id).count()
        results = {
            "database": "postgresql" if postgres else "sqlite (embedded default)",
            "broker": env.get("CELERY_BROKER_URL", "filesystem (embedded default)"),
            "model": {"name": "multilingual-e5-small", **made},
            "worker": {"pool": args.pool, "concurrency": 1, "serve_threads": args.threads or
                       "torch default", "int8": args.int8, "runtime": args.runtime,
                       "up_s": round(worker_up, 1), "warm_up_prediction_s": round(warm_s, 1)},
            "arrival": {"rate_per_s": args.rate, "seconds": args.seconds,
                        "items_per_push": args.batch, "pushes": pushes,
                        "push_ms_p50": round(support.percentile(push_ms, 50), 1),
                        "push_ms_p95": round(support.percentile(push_ms, 95), 1),
                        "schedule_lag_ms_max": round(max(lags) * 1000, 1),
                        "achieved_rate_per_s": round(len(pushed) / push_seconds, 2)},
            "items_pushed": len(ids),
            "items_predicted": len(stored),
            "items_missing_after_grace": len(ids) - len(stored),
            "grace_s": args.grace,
            "latency_s": {
                "p50": round(support.percentile(latency, 50) or 0, 2),
                "p95": round(support.percentile(latency, 95) or 0, 2),
                "max": round(latency[-1], 2) if latency else None,
                "min": round(latency[0], 2) if latency else None,
            },
            "latency_from_arrival_s": {
                "note": "includes the wait in the client for its batch to fill",
                "p50": round(support.percentile(from_arrival, 50) or 0, 2),
                "p95": round(support.percentile(from_arrival, 95) or 0, 2),
                "max": round(from_arrival[-1], 2) if from_arrival else None,
            },
            "readability_check_per_push": not args.skip_readability_check,
            "last_prediction_after_last_push_s": round(backlog_seconds, 1),
            "worker_cpu_s": round(cpu, 1),
            "worker_cpu_ms_per_item": round(cpu / max(len(stored), 1) * 1000, 1),
            "worker_cpu_note": "includes the readability checks each push queues "
                               f"({checks} VocabularyCheck rows) and alert evaluation",
            "wall_s_until_drained": round(drained, 1),
            "target": "p95 <= 5 s",
            "met": bool(latency) and len(stored) == len(ids)
            and support.percentile(latency, 95) <= 5,
            "command": "python -m bench.monitoring_latency " + " ".join(sys.argv[1:]),
        }
    finally:
        support.stop_process(worker)
        log.close()
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    from django.db import connections

    connections.close_all()
    if postgres:
        support.drop_database(args.database_url)
    if args.keep:
        print(f"kept {var_dir}")
    else:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
