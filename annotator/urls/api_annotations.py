from django.urls import path

from annotator.views import api_annotations as api

urlpatterns = [
    path("api/projects/<int:project_id>/annotations/", api.AnnotationList.as_view(),
         name="api_annotations"),
    path("api/projects/<int:project_id>/export.jsonl", api.export_jsonl, name="api_export_jsonl"),
    path("api/projects/<int:project_id>/versions/", api.versions, name="api_versions"),
    path("api/projects/<int:project_id>/versions/<int:version_id>/activate",
         api.version_activate, name="api_version_activate"),
    path("api/projects/<int:project_id>/versions/<int:version_id>/download",
         api.version_download, name="api_version_download"),
    path("api/projects/<int:project_id>/retrain", api.retrain, name="api_retrain"),
]
