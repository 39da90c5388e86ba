"""What the management commands share."""

from django.core.management.base import CommandError

from annotator.models import Project


def project_named(ref: str) -> Project:
    """The project with this id or, failing that, this name; a CommandError if neither."""
    found = Project.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    found = found or Project.objects.filter(name=ref).first()
    if found is None:
        raise CommandError(f"no project {ref!r}")
    return found
