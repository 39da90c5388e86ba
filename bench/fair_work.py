"""Benchmark: does one project's big import hold another project's work? (issue 23, fair work)

    python -m bench.fair_work                      # 100,000-row import, both queue layouts
    python -m bench.fair_work --import-rows 20000 --window 240 --layouts after

On the embedded default (SQLite, the filesystem broker) with the workers bin/up starts, real
`celery worker` processes. Project A has a model and a pool of 2,000 reviews, and keeps
working: a pushed item every --push-every seconds (measured: push -> its prediction stored),
--fast-loop labels every --label-every seconds (measured: the labels' commit -> the fast
loop's head refit, i.e. the re-ranked queue), and one retrain (measured: queued -> started,
and -> its version's pool scored). First --quiet seconds with nothing else going on, then the
same while project B imports --import-rows rows through the import worker (the upload path)
and the embedding, seeding and readability work that import brings.

Each layout runs in a process of its own on a fresh database, one after the other in one
invocation, so the figures compare side by side on a noisy machine:

- before: the routes and worker queues before this change (a pushed item's prediction and
  every import's embedding chunk behind each other on `scoring`, seeding on 10,000 items);
- after: `bulk` queue taken in turn with `scoring`, predictions with the re-ranks on
  `ranking`, seeding on a 2,000-item sample (annotator/settings.py, bin/up).

Also the peak memory (RSS, process and children) of each worker.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.support import ROOT, SHARED, celery_worker, setup_django

OLD_ROUTES = {
    "annotator.tasks.vocabulary_check_task": "scoring", "annotator.tasks.embed_pool_task": "scoring",
    "annotator.tasks.embed_chunk_task": "scoring", "annotator.tasks.seed_pool_task": "scoring",
    "annotator.tasks.predict_items_task": "scoring",
}
# bin/up's workers: name -> queues
WORKERS = {
    "before": {"models": "training,scoring", "imports": "default", "ranking": "ranking"},
    "after": {"models": "training,scoring,bulk", "imports": "default", "ranking": "ranking"},
}
WORDS = ("great bad fine sole size colour delivery refund comfy cheap broke love arrived late "
         "box seller fits small large returned again quality price soft zipper seams 质量 很好 "
         "物流 太慢 好评 一般").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["before", "after"])
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--quiet", type=float, default=120, help="seconds without the import")
    parser.add_argument("--window", type=float, default=420,
                        help="seconds measured after the import starts")
    parser.add_argument("--push-every", type=float, default=10)
    parser.add_argument("--label-every", type=float, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--run-layout", help=argparse.SUPPRESS)  # one layout, in this process
    parser.add_argument("--var-dir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.run_layout:
        print(json.dumps(run_layout(args)))
        return
    results = {}
    for layout in args.layouts:
        with tempfile.TemporaryDirectory(prefix=f"fair-{layout}-") as var:
            env = layout_env(layout, Path(var))
            command = [sys.executable, "-m", "bench.fair_work", "--run-layout", layout,
                       "--var-dir", var, "--import-rows", str(args.import_rows),
                       "--quiet", str(args.quiet), "--window", str(args.window),
                       "--push-every", str(args.push_every), "--label-every", str(args.label_every)]
            print(f"== {layout}", file=sys.stderr, flush=True)
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
            sys.stderr.write(done.stderr[-3000:])
            if done.returncode:
                raise SystemExit(f"layout {layout} failed")
            results[layout] = json.loads(done.stdout.strip().splitlines()[-1])
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def layout_env(layout: str, var: Path) -> dict:
    settings_dir = var / "settings"
    settings_dir.mkdir()
    routes = ""
    if layout == "before":
        routes = (f"CELERY_TASK_ROUTES.update({{k: {{'queue': q}} for k, q in "
                  f"{OLD_ROUTES!r}.items()}})\nSEED_CANDIDATES = 10_000\n")
    (settings_dir / "fair_settings.py").write_text(
        f"from annotator.settings import *  # noqa\n{routes}")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "CELERY_", "ANNOTATOR_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="fair_settings", PYTHONPATH=f"{settings_dir}:{ROOT}",
        ANNOTATOR_VAR_DIR=str(var / "var"), SECRET_KEY=secrets.token_urlsafe(50),
        ANNOTATOR_MODEL_DIR=os.environ.get(
            "ANNOTATOR_MODEL_DIR", str(Path.home() / ".cache/sentiment-annotator/models")),
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
        # a short fine-tune: what is measured is waiting, not learning
        ANNOTATOR_TRAINING_OVERRIDES=json.dumps({"max_steps": 20, "batch_size": 16}),
    )
    return env


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    with (SHARED / "clothing_reviews" / "train.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("text")]
    return [(r["text"], r["label"]) for r in random.Random(seed).sample(rows, n)]


def run_layout(args) -> dict:
    setup_django()  # DJANGO_SETTINGS_MODULE: the layout's settings (layout_env)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    workers = start_workers(WORKERS[args.run_layout], args.var_dir)
    memory = MemoryWatch(workers)
    try:
        a = setup_project_a()
        quiet = measure(a, args, seconds=args.quiet, retrain_at=args.quiet / 4)
        importer = start_import(args.import_rows)
        busy = measure(a, args, seconds=args.window, retrain_at=30)
        import_status = importer()
    finally:
        memory.stop()
        for proc in workers.values():
            proc.terminate()
        for proc in workers.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"quiet": quiet, "import": busy, "import_job": import_status,
            "peak_rss_mb": memory.peaks}


def start_workers(layout: dict, var: Path) -> dict:
    logs = var / "logs"
    logs.mkdir(exist_ok=True)
    procs = {}
    for name, queues in layout.items():
        with (logs / f"{name}.log").open("w") as out:
            procs[name] = celery_worker(queues, f"{name}@%h", out, loglevel="INFO")
    return procs


class MemoryWatch:
    """Peak RSS of each worker with its pool children, sampled every second."""

    def __init__(self, procs: dict):
        import psutil

        self.peaks = {name: 0 for name in procs}
        self._procs = {name: psutil.Process(p.pid) for name, p in procs.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(1):
            for name, proc in self._procs.items():
                try:
                    rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
                except Exception:  # noqa: BLE001 - a child that just exited
                    continue
                self.peaks[name] = max(self.peaks[name], round(rss / 2**20))

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def setup_project_a():
    """Project A: 80 labels, 40 gold, a pool of 2,000 reviews; its first version trained,
    its pool scored and embedded, before anything is measured."""
    import hashlib

    from django.contrib.auth import get_user_model

    from annotator.models import Annotation, Item, Membership, Project
    from annotator.services import training
    from annotator.services.pool_embeddings import pool_embed_start

    project = Project.objects.create(name="A", fast_loop_every=5)
    labeler = get_user_model().objects.create_user("lena")
    Membership.objects.create(project=project, user=labeler)
    rows = reviews(2120, seed=1)

    def item(text, **fields):
        return Item(project=project, raw_text=text, text=text, random_key=random.random(),
                    content_hash=hashlib.sha256(text.encode()).hexdigest(), **fields)

    labeled = Item.objects.bulk_create([item(t, annotation_count=1) for t, _ in rows[:80]])
    Annotation.objects.bulk_create([Annotation(item=i, labeler=labeler, label=label)
                                    for i, (_, label) in zip(labeled, rows[:80], strict=True)])
    Item.objects.bulk_create([item(t, split=Item.Split.GOLD, gold_label=label)
                              for t, label in rows[80:120]])
    Item.objects.bulk_create([item(t) for t, _ in rows[120:]])
    training.training_request(project=project, trigger="manual")
    pool_embed_start(project_id=project.pk)
    wait_until("A's first version scored its pool", lambda: _scored(project), 900)
    wait_until("A's pool embedded", lambda: not _missing_embeddings(project), 900)
    return project


def _scored(project) -> bool:
    """The active version scored the pool and ranked the queue from it."""
    from annotator.models import Item, ModelVersion

    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    return bool(version) and Item.objects.filter(scored_version=version).exists()


def _missing_embeddings(project) -> int:
    from annotator.services.pool_embeddings import missing_ids

    return len(missing_ids(project))


def wait_until(what: str, check, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"{what}: not within {timeout:.0f} s")


def start_import(rows: int):
    """B's upload, as the import page queues it: a job for the import worker."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    from annotator.models import ImportJob, Project
    from annotator.queueing import enqueue

    project = Project.objects.create(name="B")
    rng = random.Random(2)
    lines = ["text"] + [f"{n} " + " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))
                        for n in range(rows)]
    name = storages["artifacts"].save("uploads/fair.csv", ContentFile("\n".join(lines).encode()))
    job = ImportJob.objects.create(project=project, filename="fair.csv", upload_path=name,
                                   status=ImportJob.Status.QUEUED,
                                   options={"fmt": "csv", "encoding": None})
    started = time.monotonic()
    enqueue("annotator.tasks.import_file_task", job.pk)

    def status():
        job.refresh_from_db()
        return {"status": job.status, "imported": job.imported,
                "seconds": round((job.finished_at - job.started_at).total_seconds(), 1)
                if job.finished_at and job.started_at else None,
                "measured_from_queued_s": round(time.monotonic() - started, 1)}
    return status


def measure(project, args, *, seconds: float, retrain_at: float) -> dict:
    """Push, label and retrain in project A for `seconds`; latencies of each."""
    from annotator.models import HeadFit, Item, ModelVersion, Prediction, TrainingRun
    from annotator.services import training
    from annotator.services.items import items_push

    pushes, reranks, started = [], [], time.monotonic()
    pending_push, pending_label, next_push, next_label = {}, None, 0.0, 0.0
    retrain, run = {}, None
    while time.monotonic() - started < seconds or pending_push or pending_label or \
            (run and "scored_s" not in retrain):
        now = time.monotonic() - started
        if now >= next_push and now < seconds:
            text = f"pushed {random.random():.9f} arrived late and the zipper broke"
            result = items_push(project=project, rows=[{"text": text}])
            pending_push[result.rows[0]["item_id"]] = time.monotonic()
            next_push = now + args.push_every
        if pending_label is None and now >= next_label and now < seconds:
            pending_label = _label_some(project)
            next_label = now + args.label_every
        if run is None and now >= retrain_at:
            run = training.training_request(project=project, trigger="manual", force=True)
            retrain["requested"] = time.monotonic()
        for item_id, sent in list(pending_push.items()):
            if Prediction.objects.filter(item_id=item_id).exists():
                pushes.append(time.monotonic() - sent)
                del pending_push[item_id]
        if pending_label is not None:
            count, sent = pending_label
            if HeadFit.objects.filter(project=project, labels__gte=count).exists():
                reranks.append(time.monotonic() - sent)
                pending_label = None
        if run is not None:
            run.refresh_from_db()
            if "started_s" not in retrain and run.started_at:
                retrain["started_s"] = round(time.monotonic() - retrain["requested"], 1)
            if "scored_s" not in retrain and run.status == TrainingRun.Status.SUCCEEDED:
                version = ModelVersion.objects.filter(training_run=run).first()
                if version and (not version.is_active or Item.objects.filter(
                        scored_version=version).exists()):
                    retrain["scored_s"] = round(time.monotonic() - retrain["requested"], 1)
            if run.status == TrainingRun.Status.FAILED:
                retrain["failed"] = run.error[:200]
                retrain["scored_s"] = None
        if now > seconds + 1800:
            break
        time.sleep(0.25)
    retrain.pop("requested", None)
    return {"push_to_prediction_s": summary(pushes), "label_to_rerank_s": summary(reranks),
            "retrain": retrain}


def _label_some(project) -> tuple[int, float]:
    """Label fast_loop_every items of A's queue (as labelers would) and ask for a re-rank;
    (labeled count the refit must reach, when the labels committed)."""
    from django.contrib.auth import get_user_model

    from annotator.models import Annotation, Item
    from annotator.services.fast_loop import label_recorded
    from annotator.services.labeling import annotation_submit, item_next_claim

    labeler = get_user_model().objects.get(username="lena")
    for _ in range(project.fast_loop_every):
        item = item_next_claim(labeler=labeler, project=project)
        if item is None:
            break
        annotation_submit(labeler=labeler, item=item, label=random.choice(project.label_names))
    label_recorded(project)
    labeled = Annotation.objects.filter(item__project=project,
                                        item__split=Item.Split.POOL).values("item").distinct()
    return labeled.count(), time.monotonic()


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "max": round(max(values), 2)}


def print_table(results: dict) -> None:
    print("| layout | phase | push -> prediction p50 / p95 (s) | label -> re-ranked p50 / p95 (s) "
          "| retrain queued -> started (s) | -> pool scored (s) |")
    print("|---|---|---|---|---|---|")
    for layout, result in results.items():
        for phase in ("quiet", "import"):
            r = result[phase]
            push, rerank = r["push_to_prediction_s"] or {}, r["label_to_rerank_s"] or {}
            print(f"| {layout} | {phase} | {push.get('p50')} / {push.get('p95')} | "
                  f"{rerank.get('p50')} / {rerank.get('p95')} | "
                  f"{r['retrain'].get('started_s')} | {r['retrain'].get('scored_s')} |")
    for layout, result in results.items():
        print(f"{layout}: import {result['import_job']}; peak RSS MB {result['peak_rss_mb']}")


if __name__ == "__main__":
    main()
