"""What an import raises: the file cannot be imported, the project is busy, the job was lost."""

from annotator.models import ImportJob


class ImportRejected(Exception):
    """The file cannot be imported; nothing was written."""

    job: ImportJob | None = None

    def __init__(self, reason: str, *, line: int | None = None):
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


class ImportBusy(Exception):
    """Another import of the project is running; this one waits (or the user runs it later)."""


class ImportLost(Exception):
    """The job was marked failed while it ran (stale, e.g. the database stalled too long)."""
