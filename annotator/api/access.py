"""The REST API's one access check and one error shape (the same rules as the pages:
annotator.permissions).

A project that does not exist is 404; one the caller has no part in is 403, as is one they
label in but must manage for this call.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse
from rest_framework.exceptions import PermissionDenied

from annotator.api.serializers.common import ErrorSerializer
from annotator.models import Project
from annotator.permissions import can_label, can_manage


def api_project(user, project_id: int, *, manage: bool = False) -> Project:
    """The project for this API caller: a member's (staff see all), or with `manage` one they
    manage (staff or its admin)."""
    project = get_object_or_404(Project, pk=project_id)
    if not can_label(user, project):
        raise PermissionDenied("you are not a member of this project")
    if manage and not can_manage(user, project):
        raise PermissionDenied("only staff and this project's admins may do this")
    return project


def error(description: str) -> OpenApiResponse:
    """An error response in the schema: `{"detail": "..."}`."""
    return OpenApiResponse(ErrorSerializer, description=description)


NO_AUTH = error("no or invalid credentials (send `Authorization: Token <key>`)")
NOT_MANAGER = error("neither staff nor an admin of the project")
