from django.urls import path

from annotator.views import api_monitoring, monitoring

urlpatterns = [
    path("api/projects/<int:project_id>/alert-rules/", api_monitoring.alert_rules,
         name="api_alert_rules"),
    path("api/projects/<int:project_id>/alert-rules/<int:rule_id>", api_monitoring.alert_rule,
         name="api_alert_rule"),
    path("projects/<int:project_id>/monitoring/status", monitoring.status,
         name="monitoring_status"),
    path("projects/<int:project_id>/monitoring/alerts/<int:alert_id>/acknowledge",
         monitoring.alert_acknowledge, name="monitoring_alert_acknowledge"),
]
