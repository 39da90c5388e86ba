"""Load test of "submit a label and get the next item".

Creates a database of its own (PostgreSQL: CREATE DATABASE; SQLite: a temp file),
migrates it, seeds N items and L labelers, starts the app under gunicorn on
127.0.0.1, then L simulated labelers (threads, each with its own login session
and CSRF token) loop POST /projects/<id>/label/submit, which answers with the
next item. Reports p50/p95/p99 of the time measured in the client and of the
view's own time (Server-Timing header), the error count, and checks afterwards
that no item got more labels than it needed and no submit was lost.

    python -m bench.labeling_load                       # PostgreSQL bench_labeling
    python -m bench.labeling_load --database-url sqlite:////tmp/bench_labeling.sqlite3

Loopback only; the database is dropped at the end unless --keep-db.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

from bench.support import (
    admin_url,
    create_database,
    drop_database,
    gunicorn,
    migrate,
    percentile,
    server_env,
    setup_django,
)

PASSWORD = "bench-password-123"
LABELS = ["negative", "neutral", "positive"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/bench_labeling",
        help="postgres://.../<db> (created and dropped) or sqlite:////path (file replaced)",
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="how long the labelers loop")
    parser.add_argument("--max-per-labeler", type=int, default=100_000)
    parser.add_argument(
        "--think-ms", type=float, default=0, help="pause between items (0 = flat out)"
    )
    parser.add_argument("--overlap-percent", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def seed(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Runs inside this process after django.setup(); returns (project id, usernames)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connections

    from annotator.models import Item, Membership, Project
    from annotator.services.labeling import project_apply_overlap

    project = Project.objects.create(
        name="Bench shoes", overlap_percent=args.overlap_percent, overlap_labelers=2
    )
    rng = random.Random(7)
    words = "great bad fine sole size colour delivery refund comfy cheap broke love".split()
    batch = []
    for i in range(args.items):
        text = f"review {i}: " + " ".join(rng.choices(words, k=rng.randint(8, 40)))
        batch.append(
            Item(
                project=project,
                raw_text=text,
                text=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                random_key=rng.random(),
                meta={"product": f"SKU-{i % 500}", "source": "bench"},
            )
        )
        if len(batch) == 5000:
            Item.objects.bulk_create(batch)
            batch = []
    Item.objects.bulk_create(batch)
    project_apply_overlap(project)
    password = make_password(PASSWORD)
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"labeler{i:02d}", password=password) for i in range(args.labelers)]
    )
    users = User.objects.filter(username__in=[u.username for u in users])
    Membership.objects.bulk_create([Membership(project=project, user=u) for u in users])
    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as after any bulk import
    connections.close_all()
    return project.pk, [u.username for u in users]


# --- load -------------------------------------------------------------------


class Labeler(threading.Thread):
    """One simulated labeler: logs in first (not timed), then loops submit -> next."""

    def __init__(self, base: str, username: str, project_id: int, args):
        super().__init__(daemon=True)
        self.base, self.username, self.args = base, username, args
        self.urls = f"{base}/projects/{project_id}/label"
        self.deadline = 0.0
        self.client_ms: list[float] = []
        self.server_ms: list[float] = []
        self.errors: list[str] = []
        self.submitted = 0
        self.rng = random.Random(username)
        self.session = requests.Session()
        self.item = None

    def login(self) -> None:
        login = f"{self.base}/accounts/login/"
        self.session.get(login, timeout=60)
        response = self.session.post(
            login,
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.session.cookies["csrftoken"],
            },
            headers={"Referer": login},
            timeout=60,
        )
        if "sessionid" not in self.session.cookies:
            raise RuntimeError(f"login failed ({response.status_code})")
        self.item = self.session.get(f"{self.urls}/next", timeout=60).json()["item"]

    def run(self) -> None:
        try:
            self._loop()
        except Exception as error:  # counted, not raised: the report shows it
            self.errors.append(f"{type(error).__name__}: {error}")

    def _loop(self) -> None:
        headers = {"X-CSRFToken": self.session.cookies["csrftoken"], "Referer": f"{self.urls}/"}
        while (
            self.item
            and time.monotonic() < self.deadline
            and self.submitted < self.args.max_per_labeler
        ):
            data = {"item": self.item["id"], "label": self.rng.choice(LABELS), "seconds": "2.5"}
            started = time.perf_counter()
            response = self.session.post(
                f"{self.urls}/submit", data=data, headers=headers, timeout=60
            )
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                self.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                self.item = self.session.get(f"{self.urls}/next", timeout=60).json()["item"]
                continue
            self.client_ms.append(elapsed)
            timing = re.search(r"dur=([\d.]+)", response.headers.get("Server-Timing", ""))
            if timing:
                self.server_ms.append(float(timing.group(1)))
            payload = response.json()
            if not payload.get("notice"):
                self.submitted += 1
            self.item = payload["item"]
            if self.args.think_ms:
                time.sleep(self.args.think_ms / 1000)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def server_pids(gunicorn_pid: int, database_url: str) -> dict[str, list[int]]:
    """gunicorn's workers ("app") and the PostgreSQL backends serving the bench ("db")."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == gunicorn_pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    parsed = urlparse(database_url)
    if parsed.scheme.startswith("postgres"):
        import psycopg

        with psycopg.connect(admin_url(parsed)) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [parsed.path.lstrip("/")]
            ).fetchall()
        return {"app": pids, "db": [pid for (pid,) in rows]}
    return {"app": pids, "db": []}


def check_invariants(project_id: int) -> dict:
    from django.db import connections
    from django.db.models import Count, F

    from annotator.models import Annotation, Item

    over = Item.objects.filter(
        project_id=project_id, annotation_count__gt=F("required_labels")
    ).count()
    mismatched = (
        Item.objects.filter(project_id=project_id)
        .annotate(n=Count("annotations"))
        .exclude(n=F("annotation_count"))
        .count()
    )
    total = Annotation.objects.filter(item__project_id=project_id).count()
    connections.close_all()
    return {"annotations": total, "items_over_required": over, "count_mismatches": mismatched}


def main() -> None:
    args = parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-labeling-")
    env = server_env(args, var_dir)
    os.environ.update(env)

    print(f"database: {args.database_url}", flush=True)
    create_database(args.database_url)
    migrate(env)
    setup_django()
    started = time.monotonic()
    project_id, usernames = seed(args)
    print(
        f"seeded {args.items} items, {len(usernames)} labelers"
        f" in {time.monotonic() - started:.1f}s",
        flush=True,
    )

    with gunicorn(env, args.workers, args.threads, port=args.port) as (base, process):
        labelers = [Labeler(base, name, project_id, args) for name in usernames]
        for labeler in labelers:
            labeler.login()  # password hashing is not what we measure
        pids = server_pids(process.pid, args.database_url)
        cpu_before = {pid: _cpu_seconds(pid) for group in pids.values() for pid in group}
        load_before = os.getloadavg()[0]
        load_started = time.monotonic()
        for labeler in labelers:
            labeler.deadline = load_started + args.seconds
            labeler.start()
        for labeler in labelers:
            labeler.join()
        wall = time.monotonic() - load_started
        server_cpu = {
            name: sum(_cpu_seconds(pid) - cpu_before[pid] for pid in group)
            for name, group in pids.items()
        }
        load_after = os.getloadavg()[0]

    client = [ms for lab in labelers for ms in lab.client_ms]
    server = [ms for lab in labelers for ms in lab.server_ms]
    errors = [err for lab in labelers for err in lab.errors]
    submitted = sum(lab.submitted for lab in labelers)
    invariants = check_invariants(project_id)
    results = {
        "database": urlparse(args.database_url).scheme,
        "items": args.items,
        "labelers": args.labelers,
        "gunicorn": f"{args.workers} workers x {args.threads} threads",
        "think_ms": args.think_ms,
        "requests": len(client),
        "submits_counted": submitted,
        "errors": len(errors),
        "throughput_per_s": round(len(client) / wall, 1),
        "client_ms": {q: round(percentile(client, q) or 0, 1) for q in (50, 95, 99)},
        "server_ms": {q: round(percentile(server, q) or 0, 1) for q in (50, 95, 99)},
        "client_mean_ms": round(statistics.fmean(client), 1) if client else None,
        # CPU burnt by gunicorn workers + database backends per request: a figure
        # that does not depend on what else runs on the machine
        "server_cpu_ms_per_request": {
            name: round(1000 * seconds / max(1, len(client)), 1)
            for name, seconds in server_cpu.items()
        },
        "host_cpus": os.cpu_count(),
        "load_average_before_after": [round(load_before, 1), round(load_after, 1)],
        **invariants,
        "lost_annotations": submitted - invariants["annotations"],
    }
    print(json.dumps(results, indent=2))
    for error in errors[:5]:
        print("error:", error)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.keep_db:
        drop_database(args.database_url)


if __name__ == "__main__":
    main()
