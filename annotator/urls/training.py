from django.urls import path

from annotator.views import training

urlpatterns = [
    path("projects/<int:project_id>/models/", training.model_registry, name="model_registry"),
    path("projects/<int:project_id>/models/retrain", training.retrain_now, name="retrain_now"),
    path("projects/<int:project_id>/models/progress", training.training_progress,
         name="training_progress"),
    path("projects/<int:project_id>/models/<int:version_id>/activate", training.version_activate,
         name="version_activate"),
    path("projects/<int:project_id>/models/<int:version_id>/distill", training.version_distill,
         name="version_distill"),
    path("projects/<int:project_id>/models/<int:version_id>/download", training.version_download,
         name="version_download"),
    path("projects/<int:project_id>/models/check", training.vocabulary_check_now,
         name="vocabulary_check_now"),
    path("projects/<int:project_id>/models/confirm-model", training.vocabulary_confirm,
         name="vocabulary_confirm"),
    # the API's retrain is in annotator/api/urls.py, with the rest of the REST API
]
