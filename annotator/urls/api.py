from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotator.views import api

urlpatterns = [
    path("api/projects/<int:project_id>/predict", api.predict, name="api_predict"),
    # both need a login (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]): the schema answers 401 to
    # anonymous API clients, the docs page sends anonymous browsers to the login page
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # the split view serves Swagger UI's start script as a file (?script): no inline script
    path("api/docs/",
         login_required(SpectacularSwaggerSplitView.as_view(url_name="api_schema")),
         name="api_docs"),
]
