"""Can this process reach what it shares with the others: the database, the broker and the
object store? Each probe answers None, or one line saying what is missing and why (no
password in it). `manage.py check_services` runs them before every container's process
(docker/entrypoint.sh), so a stack started without one of them stops at once, saying which.
"""

import concurrent.futures
import re

from django.db import connections
from django.utils.connection import ConnectionDoesNotExist

PROBE_SECONDS = 15  # an object store that does not answer within this is "not reachable"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:599] + "…"


def _hide_password(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def database_problem(alias: str = "default") -> str | None:
    """A new connection with the alias's settings and a SELECT 1 (connect_timeout applies)."""
    try:
        db = connections.settings[alias]
    except ConnectionDoesNotExist:
        return f"the database {alias!r} is not configured"
    engine = db["ENGINE"].rsplit(".", 1)[-1]
    where = db["NAME"] if engine == "sqlite3" else (
        f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 'default port'}/{db['NAME']}")
    probe = connections.create_connection(alias)
    try:
        probe.ensure_connection()
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return (f"the database is not reachable ({engine} at {where}, DATABASE_URL): "
                f"{_first_line(exc)}")
    finally:
        probe.close()
    return None


def broker_problem(url: str) -> str | None:
    """One connection to the Celery broker (one retry, kombu's connect timeout)."""
    from kombu import Connection

    if url.startswith("filesystem://"):
        return None  # folders on this machine: the embedded default of one machine
    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0.5, interval_step=0)
    except Exception as exc:
        return (f"the broker is not reachable ({_hide_password(url)}, CELERY_BROKER_URL): "
                f"{_first_line(exc)}")
    return None


def _describe(storage) -> str:
    bucket = getattr(storage, "bucket_name", None)
    if bucket is None:
        return type(storage).__name__
    endpoint = getattr(storage, "endpoint_url", None) or "the provider's endpoint"
    return f"{type(storage).__name__}, bucket {bucket!r} at {endpoint}"


def object_store_problem(storage) -> str | None:
    """List the top of the storage (a missing bucket fails here, where exists() says False).

    A folder on this machine (FileSystemStorage) is no object store and passes. Bounded by
    PROBE_SECONDS: a client that retries an unreachable endpoint for minutes is cut short.
    """
    from django.core.files.storage import FileSystemStorage

    if isinstance(storage, FileSystemStorage):
        return None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(storage.listdir, "").result(timeout=PROBE_SECONDS)
    except concurrent.futures.TimeoutError:
        return (f"the object store is not reachable ({_describe(storage)}, "
                f"ARTIFACT_STORAGE_OPTIONS): no answer within {PROBE_SECONDS} s")
    except Exception as exc:
        return (f"the object store is not reachable ({_describe(storage)}, "
                f"ARTIFACT_STORAGE_OPTIONS): {_first_line(exc)}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return None


def object_store_create_bucket(storage) -> bool:
    """Create the S3 bucket of the storage if it is missing; True if it was made."""
    client = storage.connection.meta.client
    try:
        client.head_bucket(Bucket=storage.bucket_name)
        return False
    except client.exceptions.ClientError as exc:  # no botocore import: the s3 extra brings it
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    region = client.meta.region_name
    location = ({} if region in (None, "us-east-1")
                else {"CreateBucketConfiguration": {"LocationConstraint": region}})
    client.create_bucket(Bucket=storage.bucket_name, **location)
    return True


def main(argv: list[str]) -> None:
    """`python -m annotator.lib.readiness [--create-bucket]`: manage.py check_services, and one
    line too when the settings themselves cannot load (no SECRET_KEY, a malformed URL), where
    manage.py would print a traceback before the command runs."""
    import os
    import sys

    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")
    try:
        django.setup()
    except Exception as exc:
        sys.stderr.write(f"cannot start: the settings do not load: {_first_line(exc)}\n")
        sys.exit(1)
    call_command("check_services", *argv)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
