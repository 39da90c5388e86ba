from django.urls import path

from annotator.views import insight

urlpatterns = [
    path("projects/<int:project_id>/dashboard/", insight.dashboard, name="insight_dashboard"),
    path("projects/<int:project_id>/analytics/", insight.analytics, name="insight_analytics"),
    path("projects/<int:project_id>/analytics.csv", insight.analytics_csv,
         name="insight_analytics_csv"),
]
