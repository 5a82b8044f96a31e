"""Bar file uploads (the API's POST /api/instruments/<symbol>/bars and the console's Import bars
page): who may import, the options a form sends, a preview, and imports inline or by a worker.

Who may import bars into an instrument: a user with the agents.change_instrument permission into
any (a superuser has every permission; staff rank grants nothing); any other user into an
instrument they created by an upload (``Instrument.created_by``) or into a new symbol (which they
then own). The bundled and operator-made instruments (no ``created_by``) take uploads only with
that permission.

A file of at most LAB_IMPORT_INLINE_MAX_BYTES is imported during the request. A larger one is
saved under LAB_VAR_DIR/imports and imported by the task ``agents.task_names.IMPORT_BARS``; its
``BarImport`` row says queued, running (phase reading, then writing) with rows done / total,
then succeeded (counts and notes) or failed (every error). The file is removed once imported.
"""

import logging
import math
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents import task_names
from agents.market.csvparse import parse_bars
from agents.market.csvreport import FIELDS, MISSING_POLICIES, NON_POSITIVE_POLICIES, CsvImportError, ImportOptions
from agents.market.importer import import_bars_csv
from agents.market.models import BarImport, BarInterval, ImportStatus, Instrument
from config import task_messages
from core.errors import PermissionRefused, ValidationFailed

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 10
CHANGE_ANY_INSTRUMENT = "agents.change_instrument"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def may_import(user, instrument):
    # Instruments are shared by every owner's agents: changing the bars of one the user did not
    # create is a right granted by a permission (superusers have every permission), not by rank.
    if instrument is None or user.has_perm(CHANGE_ANY_INSTRUMENT):
        return True
    return instrument.created_by_id is not None and instrument.created_by_id == user.pk


def check_may_import(user, symbol):
    """The instrument (None when new); PermissionRefused when the user may not import into it."""
    instrument = Instrument.objects.filter(symbol=(symbol or "").strip()).first()
    if not may_import(user, instrument):
        raise PermissionRefused({"symbol": f"only the user who created it by an upload, or one with the "
                                           f"{CHANGE_ANY_INSTRUMENT} permission, may import bars into "
                                           f"{instrument.symbol}"})
    return instrument


def _flag(data, name, errors):
    raw = str(data.get(name, "")).strip().lower()
    if raw in _TRUE:
        return True
    if raw not in _FALSE:
        errors[name] = f"must be a boolean (true or false), got {data.get(name)!r}"
    return False


def _choice(data, name, choices, errors, default):
    value = str(data.get(name) or default).strip()
    if value not in choices:
        errors[name] = f"{value!r} is not one of {', '.join(choices)}"
    return value


def read_form(data):
    """(ImportOptions, {name, interval, bars_per_year}) from form fields; ValidationFailed naming each field."""
    errors = {}
    columns = {}
    for name in FIELDS:
        value = str(data.get(f"{name}_column") or "").strip()
        if value:
            columns[name] = value
    options = ImportOptions(
        columns=columns,
        close_only=_flag(data, "close_only", errors),
        missing=_choice(data, "missing", MISSING_POLICIES, errors, "fail"),
        adjusted=_flag(data, "adjusted", errors),
        non_positive=_choice(data, "non_positive", NON_POSITIVE_POLICIES, errors, "fail"),
        timezone=str(data.get("timezone") or "").strip(),
    )
    for problem in options.problems():
        field, _, rule = problem.partition(": ")
        errors[field] = rule
    meta = {"name": str(data.get("name") or "").strip(), "interval": None, "bars_per_year": None}
    interval = str(data.get("interval") or "").strip()
    if interval:
        if interval not in BarInterval.values:
            errors["interval"] = f"{interval!r} is not one of {', '.join(BarInterval.values)}"
        meta["interval"] = interval
    raw_bpy = str(data.get("bars_per_year") or "").strip()
    if raw_bpy:
        try:
            meta["bars_per_year"] = float(raw_bpy)
            if not (math.isfinite(meta["bars_per_year"]) and meta["bars_per_year"] > 0):
                raise ValueError
        except ValueError:
            errors["bars_per_year"] = f"must be a positive number, got {raw_bpy!r}"
    if errors:
        raise ValidationFailed(errors)
    return options, meta


def preview(upload, options, rows=PREVIEW_ROWS):
    """What the file would import, without writing: the first bars, every error, the notes."""
    report = parse_bars(upload, options)
    return {
        "ok": report.ok,
        "header": report.header,
        "columns": report.columns,
        "rows": report.rows,
        "bars": [{"line": b.line, "timestamp": b.timestamp, "open": b.open, "high": b.high, "low": b.low,
                  "close": b.close, "volume": b.volume} for b in report.bars[:rows]],
        "bar_count": len(report.bars),
        "errors": report.error_list(),
        "notes": report.notes(),
    }


def _options_dict(options, meta):
    return {"columns": dict(options.columns or {}), "close_only": options.close_only, "missing": options.missing,
            "adjusted": options.adjusted, "non_positive": options.non_positive, "timezone": options.timezone, **meta}


def _result_dict(result):
    return {"symbol": result.instrument.symbol, "created": result.created, "updated": result.updated,
            "unchanged": result.unchanged, "total": result.total, "notes": list(result.notes),
            "data_version": result.instrument.data_version}


def import_upload(user, upload, *, symbol, options, meta):
    """Import an uploaded file: ("imported", result dict) inline, or ("queued", BarImport) for a worker.

    Raises PermissionRefused, or ValidationFailed({"file": [every error]}) having written nothing.
    """
    check_may_import(user, symbol)
    size = getattr(upload, "size", None) or 0
    if size <= settings.LAB_IMPORT_INLINE_MAX_BYTES:
        try:
            result = import_bars_csv(upload, symbol=symbol, options=options, created_by=user, **meta)
        except CsvImportError as exc:
            raise ValidationFailed({"file": exc.errors})
        return "imported", _result_dict(result)
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    job_id = uuid.uuid4()
    path = folder / f"{job_id}.csv"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    with transaction.atomic():
        job = BarImport.objects.create(
            id=job_id, symbol=symbol.strip(), requested_by=user, path=str(path),
            filename=(getattr(upload, "name", "") or "")[:200], size=size, options=_options_dict(options, meta),
        )
        task_messages.send_on_commit(task_names.IMPORT_BARS, str(job.pk))
    return "queued", job


def run_bar_import(import_id):
    """Run a queued upload import (the worker's half); a second delivery of a claimed one does nothing."""
    claimed = BarImport.objects.filter(pk=import_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, phase="reading", started_at=timezone.now()
    )
    if not claimed:
        return None
    job = BarImport.objects.select_related("requested_by").get(pk=import_id)
    stored = dict(job.options)
    meta = {key: stored.pop(key, None) for key in ("name", "interval", "bars_per_year")}
    meta["name"] = meta["name"] or ""
    options = ImportOptions(**stored)

    def reading(done, total):
        BarImport.objects.filter(pk=job.pk).update(done=done, total=total)

    def writing(done, total):
        # Inside the import's transaction: other connections see this once it commits, so the
        # phase is set before (below) and the final counts after.
        pass

    def read_then_write(done, total):
        reading(done, total)
        if done == total:
            BarImport.objects.filter(pk=job.pk).update(phase="writing")

    try:
        if job.requested_by is None:
            raise CsvImportError(["the user who uploaded the file no longer exists"])
        check_may_import(job.requested_by, job.symbol)
        result = import_bars_csv(job.path, symbol=job.symbol, options=options, created_by=job.requested_by,
                                 progress=writing, read_progress=read_then_write, **meta)
    except (CsvImportError, PermissionRefused) as exc:
        errors = exc.errors if isinstance(exc, CsvImportError) else list(exc.errors.values())
        BarImport.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, phase="", errors=errors,
                                                   finished_at=timezone.now())
    except Exception as exc:
        logger.exception("bar import %s failed", job.pk)
        BarImport.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, phase="",
                                                   errors=[f"internal error: {exc.__class__.__name__}"],
                                                   finished_at=timezone.now())
    else:
        BarImport.objects.filter(pk=job.pk).update(status=ImportStatus.SUCCEEDED, phase="",
                                                   result=_result_dict(result), finished_at=timezone.now())
    Path(job.path).unlink(missing_ok=True)
    return BarImport.objects.get(pk=job.pk)


def import_status(job):
    return {"id": str(job.pk), "symbol": job.symbol, "status": job.status, "phase": job.phase, "done": job.done,
            "total": job.total, "filename": job.filename, "size": job.size, "result": job.result,
            "errors": job.errors, "created_at": job.created_at, "started_at": job.started_at,
            "finished_at": job.finished_at}
