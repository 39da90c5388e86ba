"""The one cache every process shares (settings.CACHES, annotator/lib/cache_backends.py): where it
lives for each configuration, and the two backends' promises (atomic counts across processes,
a count's window kept; clearing the cache never empties Celery's queues).

That sessions, the lockout and the invitation link hold across real server processes is
tests/annotator/test_shared_sessions.py's.
"""

import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache.backends import base, filebased

from annotator.lib import cache_backends
from annotator.lib.cache_backends import SharedFileCache, SharedRedisCache

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, INCREMENTS = 4, 150


def _cache_setting(tmp_path, **env: str) -> dict:
    """settings.CACHES of the production settings imported with exactly this environment."""
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)),
             "ANNOTATOR_VAR_DIR": str(tmp_path), "SECRET_KEY": secrets.token_urlsafe(50),
             "DJANGO_SETTINGS_MODULE": "annotator.settings", **env}
    result = subprocess.run(
        [sys.executable, "-c", "import json; from annotator import settings as s; "
                               "print(json.dumps(s.CACHES))"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- where the cache lives ----------------------------------------------------------------


def test_the_embedded_default_caches_in_files_beside_the_database(tmp_path):
    caches = _cache_setting(tmp_path)
    assert caches["default"]["BACKEND"] == "annotator.lib.cache_backends.SharedFileCache"
    assert caches["default"]["LOCATION"] == str(tmp_path / "cache" / "default")
    assert caches["insight"]["LOCATION"] == str(tmp_path / "cache" / "insight")


def test_a_redis_broker_is_the_cache_too_under_its_own_key_prefix(tmp_path):
    caches = _cache_setting(tmp_path, CELERY_BROKER_URL="redis://broker:6379/3")
    assert caches["default"] == {"BACKEND": "annotator.lib.cache_backends.SharedRedisCache",
                                 "LOCATION": "redis://broker:6379/3", "KEY_PREFIX": "annotator"}
    assert caches["insight"]["KEY_PREFIX"] == "annotator-insight"


def test_cache_url_wins_over_the_broker(tmp_path):
    caches = _cache_setting(tmp_path, CELERY_BROKER_URL="redis://broker:6379/3",
                            CACHE_URL="redis://cache:6379/0")
    assert caches["default"]["LOCATION"] == "redis://cache:6379/0"
    assert caches["default"]["BACKEND"] == "annotator.lib.cache_backends.SharedRedisCache"


def test_the_sessions_are_read_from_the_shared_cache_and_kept_in_the_database():
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    assert settings.CACHES["default"]["BACKEND"] in (
        "annotator.lib.cache_backends.SharedFileCache", "annotator.lib.cache_backends.SharedRedisCache")


# --- the file cache: counts across processes, a count's window ---------------------------


def _count(location: str, start, out) -> None:
    cache = SharedFileCache(location, {})
    start.wait()
    for _ in range(INCREMENTS):
        cache.add("failures", 0, timeout=600)
        cache.incr("failures")
    out.put(os.getpid())


def test_increments_from_several_processes_at_once_are_all_counted(tmp_path):
    """Django's own file cache reads, adds and writes: counts from processes racing each
    other are lost (a lockout that never reaches its limit)."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_count, args=(str(tmp_path), start, out))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    assert SharedFileCache(str(tmp_path), {}).get("failures") == PROCESSES * INCREMENTS


@pytest.fixture
def clock(monkeypatch):
    now = [time.time()]
    fake = types.SimpleNamespace(time=lambda: now[0])
    for module in (base, filebased, cache_backends):
        monkeypatch.setattr(module, "time", fake)
    return now


def test_an_increment_keeps_the_window_of_the_first_failure(tmp_path, clock):
    cache = SharedFileCache(str(tmp_path), {})
    cache.add("failures", 0, timeout=100)
    clock[0] += 50
    assert cache.incr("failures") == 1
    clock[0] += 49
    assert cache.get("failures") == 1
    clock[0] += 2  # 101 s after the first: the window is over (not 300 s after the incr)
    assert cache.get("failures") is None
    with pytest.raises(ValueError):
        cache.incr("failures")


def test_add_takes_a_key_once(tmp_path):
    cache = SharedFileCache(str(tmp_path), {})
    assert cache.add("fast-loop:1", 1, timeout=60) is True
    assert cache.add("fast-loop:1", 2, timeout=60) is False
    assert cache.get("fast-loop:1") == 1


# --- the Redis cache: clearing it leaves the broker's keys ---------------------------------


def test_clearing_the_redis_cache_leaves_the_brokers_keys():
    if not settings.CACHE_URL.startswith("redis"):
        pytest.skip("needs Redis (CELERY_BROKER_URL or CACHE_URL); CI's first pass has it")
    cache = SharedRedisCache(settings.CACHE_URL, {"KEY_PREFIX": "annotator-test-clear"})
    client = cache._cache.get_client(None, write=True)
    queue = f"test-queue-{secrets.token_hex(4)}"
    client.rpush(queue, "a message")
    try:
        cache.set("mark", 1)
        cache.clear()
        assert cache.get("mark") is None
        assert client.lrange(queue, 0, -1) == [b"a message"]
    finally:
        client.delete(queue)


def test_a_burst_of_writes_lists_the_folder_once_per_cull_window(tmp_path, monkeypatch):
    """Django's file cache lists its folder on every set to decide whether to cull (tens of
    ms at thousands of entries); ours looks once per CULL_EVERY_SECONDS."""
    cache = SharedFileCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 10}})
    listed = []
    real = cache._list_cache_files
    monkeypatch.setattr(cache, "_list_cache_files", lambda: listed.append(1) or real())
    for i in range(30):
        cache.set(f"k{i}", i)
    assert len(listed) == 1
    now = time.monotonic() + SharedFileCache.CULL_EVERY_SECONDS
    monkeypatch.setattr(cache_backends, "monotonic", lambda: now)
    cache.set("one-more", 1)  # the window is over: over MAX_ENTRIES, a third is culled
    assert len(listed) == 2
    assert len(real()) < 31
