"""The REST API's routes (the schema and its docs page included)."""

from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotator.api import annotations, monitoring, predict, projects, search, versions

urlpatterns = [
    path("api/projects/", projects.projects, name="api_projects"),
    path("api/projects/<int:project_id>/", projects.project, name="api_project"),
    path("api/projects/<int:project_id>/items/", projects.items, name="api_items"),
    path("api/projects/<int:project_id>/items/<int:item_id>/", projects.item,
         name="api_item"),
    path("api/projects/<int:project_id>/items/<int:item_id>/similar/", search.more_like_this,
         name="api_item_similar"),
    path("api/projects/<int:project_id>/search/meaning/", search.by_meaning,
         name="api_search_meaning"),
    path("api/projects/<int:project_id>/duplicate-groups/", search.groups,
         name="api_duplicate_groups"),
    path("api/projects/<int:project_id>/duplicate-groups/<int:group_id>/", search.group,
         name="api_duplicate_group"),
    path("api/projects/<int:project_id>/bulk-labels/", search.bulk_labels,
         name="api_bulk_labels"),
    path("api/projects/<int:project_id>/bulk-labels/<int:bulk_id>/undo",
         search.bulk_label_undo_view, name="api_bulk_label_undo"),
    path("api/projects/<int:project_id>/predict", predict.predict, name="api_predict"),
    path("api/projects/<int:project_id>/annotations/", annotations.AnnotationList.as_view(),
         name="api_annotations"),
    path("api/projects/<int:project_id>/export.jsonl", annotations.export_jsonl,
         name="api_export_jsonl"),
    path("api/projects/<int:project_id>/versions/", versions.versions, name="api_versions"),
    path("api/projects/<int:project_id>/versions/<int:version_id>/activate",
         versions.version_activate, name="api_version_activate"),
    path("api/projects/<int:project_id>/versions/<int:version_id>/download",
         versions.version_download, name="api_version_download"),
    path("api/projects/<int:project_id>/retrain", versions.retrain, name="api_retrain"),
    path("api/projects/<int:project_id>/alert-rules/", monitoring.alert_rules,
         name="api_alert_rules"),
    path("api/projects/<int:project_id>/alert-rules/<int:rule_id>", monitoring.alert_rule,
         name="api_alert_rule"),
    # both need a login (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]): the schema answers 401 to
    # anonymous API clients, the docs page sends anonymous browsers to the login page
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # the split view serves Swagger UI's start script as a file (?script): no inline script
    path("api/docs/",
         login_required(SpectacularSwaggerSplitView.as_view(url_name="api_schema")),
         name="api_docs"),
]
