from django.urls import path

from annotator.views import api_projects

urlpatterns = [
    path("api/projects/", api_projects.projects, name="api_projects"),
    path("api/projects/<int:project_id>/", api_projects.project, name="api_project"),
    path("api/projects/<int:project_id>/items/", api_projects.items, name="api_items"),
    path("api/projects/<int:project_id>/items/<int:item_id>/", api_projects.item,
         name="api_item"),
]
