from django.urls import path

from annotator.views import search

urlpatterns = [
    path("projects/<int:project_id>/find/", search.find, name="find_items"),
    path("projects/<int:project_id>/find/bulk-label", search.find_bulk_label,
         name="find_bulk_label"),
    path("projects/<int:project_id>/find/bulk-labels/<int:bulk_id>/undo", search.find_bulk_undo,
         name="find_bulk_undo"),
    path("projects/<int:project_id>/find/groups", search.find_groups_refresh,
         name="find_groups_refresh"),
]
