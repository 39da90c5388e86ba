"""Request body limits, checked from Content-Length before anything reads the body.

Django bounds form fields (DATA_UPLOAD_MAX_MEMORY_SIZE) but not file uploads or bodies that
DRF parses from the stream, so a client could make a worker read gigabytes. Views marked
with `allows_upload` take up to settings.UPLOAD_MAX_BYTES, all others REQUEST_MAX_BYTES.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


def allows_upload(view):
    """Mark a view that receives files (the larger limit applies)."""
    view.body_limit = "UPLOAD_MAX_BYTES"
    return view


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        limit = getattr(settings, getattr(view_func, "body_limit", "REQUEST_MAX_BYTES"))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= limit:
            return None
        message = (f"The request is {length / 2**20:.1f} MB; this page accepts at most "
                   f"{limit / 2**20:.0f} MB.")
        if request.path.startswith("/api/") or "json" in request.META.get("CONTENT_TYPE", ""):
            return JsonResponse({"detail": message}, status=413)
        html = render_to_string("annotator/too_large.html", {"message": message}, request=request)
        return HttpResponse(html, status=413)
