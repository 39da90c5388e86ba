"""python manage.py import_items PROJECT FILE [--label-column label --split gold ...]"""

import os
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.management.projects import project_named
from annotator.models import Item
from annotator.services.importing import (
    FORMATS,
    OPTIONS,
    ImportBusy,
    ImportRejected,
    import_file,
)


class Command(BaseCommand):
    help = "Import items from a CSV, TSV, JSON or JSONL file into a project (all or nothing, streamed)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project name or id")
        parser.add_argument("path")
        parser.add_argument(
            "--format", dest="fmt", choices=FORMATS, help="default: from the extension"
        )
        parser.add_argument("--encoding", help="default: detected (UTF-8, GB18030 or Windows-1252)")
        parser.add_argument("--text-column", default="text")
        parser.add_argument(
            "--label-column", help="labels -> gold_label (--split gold) or imported_label"
        )
        parser.add_argument("--id-column", help="-> external_id")
        parser.add_argument(
            "--meta-column",
            action="append",
            default=[],
            dest="meta_columns",
            help="copy this column into meta (repeatable)",
        )
        parser.add_argument("--kind-column")
        parser.add_argument(
            "--turns-column", default="turns", help="dialogue turns [{speaker, text}]"
        )
        parser.add_argument("--split", choices=Item.Split.values, default=Item.Split.POOL)
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="skip invalid rows: list empty or too long texts as rejected in the report "
            "instead of failing the import",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        path = opts["path"]
        if not os.path.isfile(path):
            raise CommandError(f"no such file: {path}")
        bar = tqdm(
            total=os.path.getsize(path),
            unit="B",
            unit_scale=True,
            disable=opts["no_progress"],
            desc="import",
        )
        stop = threading.Event()

        def on_ctrl_c(signum, frame):
            # The first Ctrl-C asks the import to stop after the batch it is writing: a
            # KeyboardInterrupt raised at any bytecode can land in a destructor, where Python
            # prints it and goes on (the import then ran to the end). A second one stops now.
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()

        def progress(done: int) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            bar.update(done - bar.n)

        main = threading.current_thread() is threading.main_thread()  # signals: main thread only
        previous = signal.signal(signal.SIGINT, on_ctrl_c) if main else None
        try:
            job = import_file(
                project=project,
                path=path,
                progress=progress,
                **{name: opts[name] for name in OPTIONS},  # the argparse dests are the names
            )
        except ImportRejected as exc:
            raise CommandError(f"import failed, nothing was written: {exc}") from None
        except ImportBusy as exc:
            raise CommandError(f"not started: {exc}") from None
        except KeyboardInterrupt:
            raise CommandError("interrupted: nothing was imported (the job is marked failed)") \
                from None
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            bar.close()
        self.stdout.write(
            f"import #{job.pk}: {job.imported} imported, {job.duplicates} duplicate, "
            f"{job.rejected} rejected"
        )
        for entry in job.report:
            self.stdout.write(f"  line {entry['line']}: {entry['reason']}")
        listed = len(job.report)
        if listed < job.duplicates + job.rejected:
            self.stdout.write(f"  ... {job.duplicates + job.rejected - listed} more not listed")
