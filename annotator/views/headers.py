"""The Content-Security-Policy header (settings.CONTENT_SECURITY_POLICY) on every response.

Django 5.2 has none of its own; SecurityMiddleware already sends X-Content-Type-Options and
Referrer-Policy. The pages keep no inline script, event handler or javascript: link (page
scripts are static files reading data- attributes), so script-src is 'self' alone.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy",
                                        settings.CONTENT_SECURITY_POLICY)
        return response
