"""Renders service errors as API responses that name the field and the rule."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ServiceError


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response({k: v if isinstance(v, list) else [v] for k, v in exc.errors.items()}, status=exc.status_code)
    return drf_exception_handler(exc, context)
