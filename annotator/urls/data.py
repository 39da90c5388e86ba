from django.urls import path

from annotator.views import data

urlpatterns = [
    path("projects/<int:project_id>/import/", data.import_upload, name="import_upload"),
    path(
        "projects/<int:project_id>/import/<int:job_id>/preview",
        data.import_preview,
        name="import_preview",
    ),
    path(
        "projects/<int:project_id>/import/<int:job_id>/cancel",
        data.import_cancel,
        name="import_cancel",
    ),
    path(
        "projects/<int:project_id>/import/<int:job_id>/", data.import_report, name="import_report"
    ),
    path(
        "projects/<int:project_id>/import/<int:job_id>/status",
        data.import_status,
        name="import_status",
    ),
    path(
        "projects/<int:project_id>/import/<int:job_id>/rejected.csv",
        data.import_rejected_download,
        name="import_rejected_download",
    ),
    path("projects/<int:project_id>/export", data.export_download, name="export_download"),
]
