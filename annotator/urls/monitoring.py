from django.urls import path

from annotator.views import monitoring

urlpatterns = [
    path("projects/<int:project_id>/monitoring/status", monitoring.status,
         name="monitoring_status"),
    path("projects/<int:project_id>/monitoring/alerts/<int:alert_id>/acknowledge",
         monitoring.alert_acknowledge, name="monitoring_alert_acknowledge"),
]
