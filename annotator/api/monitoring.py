"""Alert rules API (Django REST framework): token or session auth, staff or project admins."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from annotator.api.access import api_project
from annotator.api.serializers.monitoring import AlertRuleCreatedSerializer, AlertRuleSerializer
from annotator.models import AlertRule
from annotator.selectors import monitoring as selectors_monitoring
from annotator.services import monitoring


@extend_schema(request=AlertRuleSerializer, responses={200: AlertRuleSerializer(many=True),
                                                       201: AlertRuleCreatedSerializer})
@api_view(["GET", "POST"])
def alert_rules(request: Request, project_id: int) -> Response:
    project = api_project(request.user, project_id, manage=True)
    if request.method == "GET":
        rules = selectors_monitoring.alert_rules(project)
        return Response(AlertRuleSerializer(rules, many=True).data)
    serializer = AlertRuleSerializer(data=request.data, context={"project": project})
    serializer.is_valid(raise_exception=True)
    rule = monitoring.alert_rule_create(project_id=project.pk, **serializer.validated_data)
    return Response(AlertRuleCreatedSerializer(rule).data, status=status.HTTP_201_CREATED)


@extend_schema(request=AlertRuleSerializer, responses={200: AlertRuleSerializer, 204: None})
@api_view(["GET", "PATCH", "DELETE"])
def alert_rule(request: Request, project_id: int, rule_id: int) -> Response:
    project = api_project(request.user, project_id, manage=True)
    rule = get_object_or_404(AlertRule, id=rule_id, project=project)
    if request.method == "GET":
        return Response(AlertRuleSerializer(rule).data)
    if request.method == "DELETE":
        monitoring.alert_rule_delete(rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)
    serializer = AlertRuleSerializer(rule, data=request.data, partial=True,
                                     context={"project": project})
    serializer.is_valid(raise_exception=True)
    rule = monitoring.alert_rule_update(rule=rule, **serializer.validated_data)
    return Response(AlertRuleSerializer(rule).data)
