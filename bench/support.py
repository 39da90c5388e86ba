"""What the bench scripts share: paths, the Django bootstrap, a database of their own,
gunicorn on loopback, and small process and percentile helpers.

Only the standard library at import time (bench/al_device.py runs on a machine without
this venv): Django, psycopg and requests are imported inside the functions that use them.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"  # the data sets, beside the repository


# --- Django -----------------------------------------------------------------


def setup_django() -> None:
    """django.setup() on annotator.settings, unless DJANGO_SETTINGS_MODULE names others."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")
    import django

    django.setup()


def migrate(env: dict) -> None:
    """`manage.py migrate` in a child process, on the database env's DATABASE_URL names."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                   cwd=ROOT, env=env, check=True)


def server_env(args, var_dir: str) -> dict:
    """This process's environment for a throwaway site on args.database_url."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        DJANGO_SETTINGS_MODULE="annotator.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        ANNOTATOR_VAR_DIR=var_dir,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="3600",  # persistent connections for the whole run
        ANNOTATOR_SERVER_TIMING="1",  # the view's own time, read from each answer
    )
    return env


# --- a database of its own ----------------------------------------------------


def admin_url(parsed) -> str:
    """The `postgres` database on the server of a parsed PostgreSQL URL (to create others)."""
    return parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)


def create_database(url: str) -> None:
    """PostgreSQL: (re)create the database url names; SQLite: remove the file."""
    parsed = urlparse(url)
    if parsed.scheme.startswith("sqlite"):
        path = Path(parsed.path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    name = parsed.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"refusing odd database name {name!r}")
    with psycopg.connect(admin_url(parsed), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme.startswith("sqlite"):
        create_database(url)  # removes the files
        return
    import psycopg

    name = parsed.path.lstrip("/")
    with psycopg.connect(admin_url(parsed), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- gunicorn and worker processes ---------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    import requests

    for _ in range(120):
        if process.poll() is not None:
            raise SystemExit("gunicorn exited early")
        try:
            if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not come up")


@contextmanager
def gunicorn(env: dict, workers: int, threads: int, port: int = 0, extra: tuple = ()):
    """annotator.wsgi under gunicorn on 127.0.0.1:port (0: a free one), up before the block
    runs and terminated after it; yields (base URL, the gunicorn process)."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "annotator.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), *extra,
         "--log-level", "warning"],
        cwd=ROOT, env=env)
    try:
        wait_until_up(base, process)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def celery_worker(queues: str, hostname: str, log, env: dict | None = None,
                  loglevel: str = "info", pool: str = "") -> subprocess.Popen:
    """`celery -A annotator worker -Q queues --concurrency 1` (prefork unless pool says
    otherwise), its output into the open file log; env None: this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "annotator", "worker", "-Q", queues,
         "--concurrency", "1", *(["--pool", pool] if pool else []), "--loglevel", loglevel,
         "--hostname", hostname],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(proc, timeout: float = 30) -> None:
    """SIGTERM (a Celery worker finishes its task and exits), then SIGKILL after timeout."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of pid and its live descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, total = {pid}, 0.0
    changed = True
    while changed:
        changed = False
        for child, (ppid, _) in parents.items():
            if ppid in tree and child not in tree:
                tree.add(child)
                changed = True
    for p in tree:
        total += parents.get(p, (0, 0.0))[1]
    return total


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]
