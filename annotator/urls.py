from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from annotator import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("", views.project_list, name="project_list"),
]
