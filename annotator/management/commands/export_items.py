"""python manage.py export_items PROJECT [--format csv|jsonl] [-o FILE] [--labeled-only] ..."""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotator.management.projects import project_named
from annotator.services.exporting import FORMATS, export_rows, parse_when


class Command(BaseCommand):
    help = "Export a project's items with labels and provenance as CSV or JSONL (streamed)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project name or id")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="jsonl")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")
        parser.add_argument("--labeled-only", action="store_true")
        parser.add_argument("--gold-only", action="store_true")
        parser.add_argument("--labeler", help="username: only this labeler's annotations")
        parser.add_argument("--since", help="annotations from this date/datetime (inclusive)")
        parser.add_argument("--until", help="annotations before this date/datetime (exclusive)")
        parser.add_argument("--bom", action="store_true",
                            help="CSV: start with a UTF-8 byte order mark, so Excel shows Chinese")

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        labeler = None
        if opts["labeler"]:
            try:
                labeler = get_user_model().objects.get(username=opts["labeler"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user {opts['labeler']!r}") from None
        try:
            since = parse_when(opts["since"]) if opts["since"] else None
            until = parse_when(opts["until"]) if opts["until"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        rows = export_rows(
            project=project,
            fmt=opts["fmt"],
            labeled_only=opts["labeled_only"],
            gold_only=opts["gold_only"],
            labeler=labeler,
            since=since,
            until=until,
            bom=opts["bom"],
        )
        out = (
            open(opts["output"], "w", encoding="utf-8", newline="")
            if opts["output"]
            else sys.stdout
        )
        count = -1 if opts["fmt"] == "csv" else 0
        try:
            for piece in rows:
                out.write(piece)
                count += 1
        finally:
            if out is not sys.stdout:
                out.close()
        if opts["output"]:
            self.stderr.write(f"exported {count} items to {opts['output']}")
