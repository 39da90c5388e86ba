import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotator.selectors.projects import projects_for_user

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = projects_for_user(request.user)
    return render(request, "annotator/project_list.html", {"projects": projects})


class LoginView(auth_views.LoginView):
    """Django's login, refusing a username from an address (429) once it failed
    LOGIN_FAILURE_LIMIT times within LOGIN_LOCKOUT_SECONDS of its first failure.

    The failures are counted in the shared cache (settings.CACHES), so every web process
    sees the same count.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if cache.get(self._failures_key(), 0) >= settings.LOGIN_FAILURE_LIMIT:
            logger.warning("login refused for %r from %s: too many failures",
                           request.POST.get("username", ""), request.META.get("REMOTE_ADDR"))
            context = self.get_context_data(form=self.form_class(request), locked_out=True)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        cache.delete(self._failures_key())
        return super().form_valid(form)

    def form_invalid(self, form) -> HttpResponse:
        key = self._failures_key()
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # the window ended between add and incr: a new one starts
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        return super().form_invalid(form)

    def _failures_key(self) -> str:
        """The cache key counting failed logins of one username from one client address.

        The username as the login form hands it to authentication (spaces stripped, Unicode
        NFKC): every spelling that would log in as "lena" ("ｌｅｎａ", " lena") counts for
        "lena", and "Lena", another account name, counts for itself. Behind a reverse proxy
        every client has the proxy's address: the count is then per username.
        """
        raw = self.request.POST.get("username", "")
        username = self.get_form().fields["username"].to_python(raw)
        who = f"{username}\n{self.request.META.get('REMOTE_ADDR', '')}"
        return "login-failures:" + hashlib.sha256(who.encode()).hexdigest()
