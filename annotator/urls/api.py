from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotator.views import api

urlpatterns = [
    path("api/projects/<int:project_id>/predict", api.predict, name="api_predict"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
]
