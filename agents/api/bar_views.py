"""POST /api/instruments/{symbol}/bars (multipart bar file upload) and its progress polling.

Rules (agents.market.uploads): users with agents.change_instrument import into any instrument,
others into instruments they created by an upload or into a new symbol. Small files are imported during the request
(201); larger ones go to a worker (202 and a Location to poll). A body over LAB_MAX_UPLOAD_BYTES
is a 413 before anything is read (config.middleware).
"""

import uuid

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from agents.market import uploads
from agents.market.csvreport import FIELDS, MISSING_POLICIES, NON_POSITIVE_POLICIES
from agents.market.models import BarImport
from agents.selectors import owned_rows
from core.errors import ValidationFailed

COLUMN_FIELDS = tuple(f"{name}_column" for name in FIELDS)
ALLOWED = {"file", "dry_run", "close_only", "missing", "adjusted", "non_positive", "timezone", "name", "interval",
           "bars_per_year", *COLUMN_FIELDS}


class BarUploadSerializer(serializers.Serializer):
    """The form's fields (documentation; agents.market.uploads.read_form validates them)."""

    file = serializers.FileField(help_text="The CSV file (UTF-8; , ; or tab delimited).")
    dry_run = serializers.BooleanField(required=False, help_text="Only validate and preview the first rows.")
    close_only = serializers.BooleanField(required=False, help_text="A date and one value column (e.g. FRED).")
    missing = serializers.ChoiceField(MISSING_POLICIES, required=False, help_text="Rows with missing prices.")
    adjusted = serializers.BooleanField(required=False, help_text="Use Adj Close, scaling open/high/low.")
    non_positive = serializers.ChoiceField(NON_POSITIVE_POLICIES, required=False)
    timezone = serializers.CharField(required=False, help_text="IANA zone of naive timestamps (default UTC).")
    name = serializers.CharField(required=False)
    interval = serializers.CharField(required=False, help_text="Bar interval of a new instrument (default 1d).")
    bars_per_year = serializers.FloatField(required=False)
    close_column = serializers.CharField(required=False, help_text="Header of the close (or value) column; "
                                         "likewise timestamp_column, open_column, ... adj_close_column.")


class BarUploadMixin:
    @extend_schema(
        request={"multipart/form-data": BarUploadSerializer},
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
    )
    @action(detail=False, methods=["post"], url_path=r"(?P<symbol>[^/]+)/bars",
            parser_classes=[MultiPartParser, FormParser])
    def upload_bars(self, request, symbol=None):
        unknown = sorted(set(request.data) - ALLOWED)
        if unknown:
            raise ValidationFailed({name: "unknown field" for name in unknown})
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationFailed({"file": "required: a multipart form field 'file' with the CSV"})
        options, meta = uploads.read_form(request.data)
        uploads.check_may_import(request.user, symbol)
        if str(request.data.get("dry_run", "")).lower() in ("1", "true", "yes", "on"):
            return Response(uploads.preview(upload, options))
        outcome, value = uploads.import_upload(request.user, upload, symbol=symbol, options=options, meta=meta)
        if outcome == "imported":
            return Response(value, status=status.HTTP_201_CREATED)
        location = request.build_absolute_uri(f"/api/instruments/{symbol}/bars/imports/{value.pk}")
        return Response(uploads.import_status(value), status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["get"], url_path=r"(?P<symbol>[^/]+)/bars/imports/(?P<import_id>[0-9a-fA-F-]{36})")
    def bar_import_status(self, request, symbol=None, import_id=None):
        try:
            import_id = uuid.UUID(import_id)
        except ValueError:
            raise Http404("no such import") from None
        jobs = owned_rows(BarImport.objects.filter(symbol=symbol), request.user, owner_path="requested_by")
        return Response(uploads.import_status(get_object_or_404(jobs, pk=import_id)))
