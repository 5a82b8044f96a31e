"""Django's error pages, answered as JSON under /api/ (clients of the API parse JSON, not HTML).

Routed views already answer JSON through DRF; these cover what no view handles: a path that
matches no route (`/api/learning-agents/not-a-uuid`, `/api/learning-agents/<id>/status`) and an
unhandled error.
"""

from django.http import JsonResponse
from django.views import defaults


def _is_api(request):
    return request.path == "/api" or request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Not found: no API route matches this path (see /api/schema/)."},
                            status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
