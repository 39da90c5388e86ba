"""Who may do what in a project. One place for the checks the views and the API make.

Staff are site-wide admins. A project admin (Membership.role == "admin") manages that
project only: its settings, labels, people, imports, exports, models and retraining.
Members label. Everyone else gets 403 (or 404 where existence must not leak).
"""

import functools

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from annotator.models import Membership, Project


def can_manage(user, project: Project) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    return Membership.objects.filter(project=project, user=user,
                                     role=Membership.Role.ADMIN).exists()


def can_label(user, project: Project) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_staff or Membership.objects.filter(project=project, user=user).exists()


def managed_project(user, project_id: int) -> Project:
    """The project `user` manages; 404 if it does not exist, 403 if not theirs to manage."""
    project = get_object_or_404(Project, pk=project_id)
    if not can_manage(user, project):
        raise PermissionDenied
    return project


def project_admin_required(view):
    """For views taking `project_id`: login, then staff or the project's admin, else 403."""

    @functools.wraps(view)
    @login_required
    def wrapper(request, *args, project_id: int, **kwargs):
        managed_project(request.user, project_id)
        return view(request, *args, project_id=project_id, **kwargs)

    return wrapper
