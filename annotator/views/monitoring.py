"""Live monitoring for the dashboard: the polled status and acknowledging an alert."""

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from annotator.models import Alert, Project
from annotator.permissions import project_admin_required
from annotator.selectors import monitoring as selectors_monitoring
from annotator.services import monitoring


@require_GET
@project_admin_required
def status(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_object_or_404(Project, id=project_id)
    return JsonResponse(selectors_monitoring.monitoring_status(project))


@require_POST
@project_admin_required
def alert_acknowledge(request: HttpRequest, project_id: int, alert_id: int) -> JsonResponse:
    alert = get_object_or_404(Alert, id=alert_id, project_id=project_id)
    acknowledged = monitoring.alert_acknowledge(alert=alert, user=request.user)
    return JsonResponse({"id": alert.pk, "acknowledged": acknowledged})
