from django.urls import path

from annotator.views import projects

urlpatterns = [
    path("projects/new/", projects.project_new, name="project_new"),
    path("projects/<int:project_id>/settings/", projects.project_settings,
         name="project_settings"),
    path("projects/<int:project_id>/labels/", projects.project_labels, name="project_labels"),
    path("projects/<int:project_id>/archive", projects.project_archive, name="project_archive"),
    path("projects/<int:project_id>/failures/dismiss", projects.project_failures_dismiss,
         name="project_failures_dismiss"),
]
