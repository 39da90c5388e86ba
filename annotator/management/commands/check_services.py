"""Refuse to start without the database, the broker or the object store (docker/entrypoint.sh
runs this before every container's process): one line on stderr naming what is missing, and
exit status 1; one line on stdout when all three answer."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from annotator.lib import readiness
from annotator.ml.artifacts import artifacts_storage


class Command(BaseCommand):
    help = "Check that the database, the Celery broker and the artifacts storage answer."
    requires_system_checks = []  # before every process: fast, and nothing but the probes

    def add_arguments(self, parser):
        parser.add_argument("--create-bucket", action="store_true",
                            help="create the S3 bucket of the artifacts storage if it is "
                                 "missing (the one-shot init of a deployment)")

    def handle(self, *args, create_bucket: bool, **options):
        storage = artifacts_storage()
        problem = readiness.database_problem() or readiness.broker_problem(
            settings.CELERY_BROKER_URL)
        if not problem and create_bucket and hasattr(storage, "bucket_name"):
            try:
                if readiness.object_store_create_bucket(storage):
                    self.stdout.write(f"created the bucket {storage.bucket_name!r}")
            except Exception as exc:
                problem = readiness.object_store_problem(storage) or (
                    f"cannot create the bucket {storage.bucket_name!r}: {exc}")
        problem = problem or readiness.object_store_problem(storage)
        if problem:
            sys.stderr.write(f"cannot start: {problem}\n")
            sys.exit(1)
        self.stdout.write("database, broker and object store answer")
