"""Reads. Views and tasks ask here; nothing in this module writes."""

from django.db.models import QuerySet

from annotator.models import Project


def projects_for_user(user) -> QuerySet[Project]:
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(members=user)
