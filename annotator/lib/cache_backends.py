"""Django's Redis and file caches, fit to be the one cache that every process shares.

settings.CACHES picks one (CACHE_URL; else the broker's Redis; else files in VAR_DIR/cache):
sessions, the login lockout, the API throttle and the "once per window" marks only count
across gunicorn workers, Celery workers and beat when they all see the same cache.
"""

import os
import pickle
import time
import zlib
from contextlib import contextmanager
from time import monotonic

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache
from django.core.files import locks

_MISSING = object()


class SharedRedisCache(RedisCache):
    """Django's Redis cache whose clear() deletes only this cache's keys.

    Without CACHE_URL the cache lives in the broker's Redis database, and Django's clear()
    is a FLUSHDB there: it would empty Celery's queues too.
    """

    def clear(self) -> bool:
        client = self._cache.get_client(None, write=True)
        pattern = f"{self.key_prefix}:*" if self.key_prefix else "*"
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
        return True


class SharedFileCache(FileBasedCache):
    """Django's file cache whose add() and incr() are atomic across the processes of one
    machine, and whose incr() keeps the key's expiry.

    Django's file cache reads and then writes: two processes adding one key both succeed,
    two failed logins counted at once count one, and every incr() resets the expiry to the
    default timeout (a 15-minute lockout window would become 5 minutes). A lock file in the
    cache's folder serialises these two; plain get and set need none (a set writes a
    temporary file and renames it, so a reader sees the old value or the new one).

    Django also lists the whole folder on every set to see whether it must cull (tens of ms
    once thousands of entries are there); here a process looks once per CULL_EVERY_SECONDS.
    """

    CULL_EVERY_SECONDS = 30.0
    _last_cull = -CULL_EVERY_SECONDS

    def _cull(self):
        if monotonic() - self._last_cull >= self.CULL_EVERY_SECONDS:
            self._last_cull = monotonic()
            super()._cull()

    @contextmanager
    def _locked(self):
        self._createdir()
        with open(os.path.join(self._dir, "write.lock"), "ab") as lock:
            locks.lock(lock, locks.LOCK_EX)
            try:
                yield
            finally:
                locks.unlock(lock)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        with self._locked():
            return super().add(key, value, timeout, version)

    def incr(self, key, delta=1, version=None):
        with self._locked():
            expiry, value = self._read(key, version)
            if value is _MISSING:
                raise ValueError(f"Key '{key}' not found")
            value += delta
            remaining = None if expiry is None else max(expiry - time.time(), 0.001)
            self.set(key, value, timeout=remaining, version=version)
            return value

    def _read(self, key, version) -> tuple[float | None, object]:
        """(expiry, value) of a live key; (None, _MISSING) when it is missing or expired."""
        try:
            with open(self._key_to_file(key, version), "rb") as f:
                expiry = pickle.load(f)
                if expiry is not None and expiry < time.time():
                    return None, _MISSING
                return expiry, pickle.loads(zlib.decompress(f.read()))
        except (FileNotFoundError, EOFError):
            return None, _MISSING
