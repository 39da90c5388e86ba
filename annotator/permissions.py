"""Who may do what in a project. One place for the checks the views and the API make.

Staff are site-wide admins. A project admin (Membership.role == "admin") manages that
project only: its settings, labels, people, imports, exports, models and retraining.
Members label. Everyone else gets 403 (or 404 where existence must not leak).

HTML views get their project through one helper here (`managed_project`, `labeled_project`,
`visible_project`) or the `project_admin_required` decorator; the DRF views call
`can_label` / `can_manage` and raise DRF's PermissionDenied with their own message.
"""

import functools

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from annotator.models import Membership, Project
from annotator.selectors.projects import projects_for_user


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


def labeled_project(user, project_id: int) -> Project:
    """The project `user` labels in; 404 if it does not exist, 403 if not theirs."""
    project = get_object_or_404(Project, pk=project_id)
    if not can_label(user, project):
        raise PermissionDenied
    return project


def visible_project(user, project_id: int, *, admin: bool = False) -> Project:
    """The project if `user` may see it (selectors.projects_for_user; 404 otherwise, so a
    project's existence does not leak); with `admin`, 403 unless they manage it."""
    project = get_object_or_404(projects_for_user(user, include_archived=True), pk=project_id)
    if admin and not can_manage(user, project):
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
