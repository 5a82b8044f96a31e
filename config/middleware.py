"""Request-level guards that run before any view or parser."""

import re

from django.conf import settings
from django.http import JsonResponse

# Bar file uploads: their bodies may reach LAB_MAX_UPLOAD_BYTES instead.
UPLOAD_PATHS = re.compile(r"^/api/instruments/[^/]+/bars/?$|^/admin/agents/instrument/[0-9]+/import-bars/?$")


class BodySizeLimitMiddleware:
    """Refuse a request whose body is over DATA_UPLOAD_MAX_MEMORY_SIZE (LAB_MAX_BODY_BYTES) with 413.

    Django applies that setting only when a body is read through `request.body` / `request.POST`;
    DRF's JSON and form parsers read the stream directly, so without this an API client could
    send any size. WSGI servers hand the app at most CONTENT_LENGTH bytes (a body without one
    reads as empty), so checking the declared length is enough and reads nothing.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit, name = settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "LAB_MAX_BODY_BYTES"
        if request.method == "POST" and UPLOAD_PATHS.match(request.path_info):
            limit, name = settings.LAB_MAX_UPLOAD_BYTES, "LAB_MAX_UPLOAD_BYTES"
        if limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0  # as Django reads it: an unparsable length is an empty body
            if length > limit:
                return JsonResponse(
                    {"detail": f"request body too large: {length} bytes, the limit is {limit} ({name})"},
                    status=413,
                )
        return self.get_response(request)
