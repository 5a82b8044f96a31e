"""The console's "Import bars" page on an instrument: upload, preview the first rows and every
error, then import (inline, or by a worker for a large file, with progress shown by polling).

The previewed file is kept under LAB_VAR_DIR/imports/preview-<token>.csv, remembered in the
user's session, so "Import" needs no second upload; it is removed once imported.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from agents.market import uploads
from agents.market.csvreport import MISSING_POLICIES, NON_POSITIVE_POLICIES
from core.errors import ServiceError

SESSION_KEY = "lab_bar_previews"


def _preview_dir():
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class BarImportAdminMixin:
    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view(self.import_bars_view)
        return [path("<int:object_id>/import-bars/", view, name=f"{name}_import_bars"), *super().get_urls()]

    def _stash(self, request, upload):
        token = secrets.token_urlsafe(16)
        target = _preview_dir() / f"preview-{token}.csv"
        with target.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        stash = request.session.get(SESSION_KEY, {})
        stash[token] = {"path": str(target), "name": upload.name[:200]}
        request.session[SESSION_KEY] = stash
        return token

    def _stashed(self, request, token):
        entry = request.session.get(SESSION_KEY, {}).get(token or "")
        if not entry or not Path(entry["path"]).exists():
            return None, None
        return entry, SimpleUploadedFile(entry["name"], Path(entry["path"]).read_bytes(), content_type="text/csv")

    def _forget(self, request, token):
        stash = request.session.get(SESSION_KEY, {})
        entry = stash.pop(token or "", None)
        request.session[SESSION_KEY] = stash
        if entry:
            Path(entry["path"]).unlink(missing_ok=True)

    def import_bars_view(self, request, object_id):
        instrument = self.get_object(request, str(object_id))
        if instrument is None:
            raise Http404("no such instrument")
        if not (uploads.may_import(request.user, instrument) and self.has_change_permission(request, instrument)):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "instrument": instrument,
            "title": f"Import bars into {instrument.symbol}", "form": request.POST or {},
            "missing_choices": MISSING_POLICIES, "non_positive_choices": NON_POSITIVE_POLICIES,
            "field_errors": {}, "preview": None, "token": "", "job": None,
            "change_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[instrument.pk]),
        }
        if request.method == "POST":
            self._handle(request, instrument, context)
            if context.get("redirect"):
                return redirect(context["redirect"])
        return TemplateResponse(request, "admin/agents/instrument/import_bars.html", context)

    def _handle(self, request, instrument, context):
        try:
            options, meta = uploads.read_form(request.POST)
        except ServiceError as exc:
            context["field_errors"] = exc.errors
            return
        meta["interval"] = None  # the instrument's own
        token = request.POST.get("token", "")
        upload = request.FILES.get("file")
        if upload is not None:
            token = self._stash(request, upload)
        entry, stashed = self._stashed(request, token)
        if stashed is None:
            context["field_errors"] = {"file": "choose a CSV file to upload"}
            return
        if request.POST.get("action") != "import":
            context["preview"] = uploads.preview(stashed, options)
            context["token"], context["filename"] = token, entry["name"]
            return
        try:
            outcome, value = uploads.import_upload(request.user, stashed, symbol=instrument.symbol, options=options,
                                                   meta=meta)
        except ServiceError as exc:
            context["field_errors"] = {k: v for k, v in exc.errors.items() if k != "file"}
            stashed.seek(0)
            context["preview"] = uploads.preview(stashed, options)
            context["token"], context["filename"] = token, entry["name"]
            return
        self._forget(request, token)
        if outcome == "queued":
            context["job"] = uploads.import_status(value)
            context["job_url"] = f"/api/instruments/{instrument.symbol}/bars/imports/{value.pk}"
            return
        notes = "; ".join(value["notes"])
        self.message_user(request, f"{instrument.symbol}: {value['total']} bars read: {value['created']} created, "
                                   f"{value['updated']} updated, {value['unchanged']} unchanged ({notes}).",
                          messages.SUCCESS)
        context["redirect"] = context["change_url"]
