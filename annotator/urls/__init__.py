from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from annotator.views import core

urlpatterns = [
    # the admin's own login would skip the failed-login lockout: it sends people to ours
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", core.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", core.healthz, name="healthz"),
    # pages that do not extend base.html (the admin, the API's) still ask for /favicon.ico
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("annotator/favicon.svg"),
                                             permanent=True)),
    path("", core.project_list, name="project_list"),
    path("", include("annotator.urls.data")),
    path("", include("annotator.urls.labeling")),
    path("", include("annotator.urls.training")),
    path("", include("annotator.urls.insight")),
    path("", include("annotator.urls.monitoring")),
    path("", include("annotator.urls.search")),
    path("", include("annotator.urls.projects")),
    path("", include("annotator.urls.people")),
    path("", include("annotator.urls.history")),
    path("", include("annotator.api.urls")),
]
