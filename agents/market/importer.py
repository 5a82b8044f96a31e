"""CSV import of OHLCV bars: validate the whole file first, then upsert it in one transaction.

The one service behind ``import_prices``, ``load_sample_data`` and the upload views. A file is
imported completely or not at all:

1. the arguments and the whole file are validated without touching the database; every problem
   (line, column, rule) is reported together in ``CsvImportError.errors``;
2. in one transaction the instrument is fetched (locked) or created, the stored bars of the
   file's time range are read once, and each row is created, updated or unchanged; changes are
   written with ``bulk_create(update_conflicts=True)`` in batches (an upsert on both databases);
3. if anything changed, ``Instrument.data_version`` is bumped, which invalidates the cached bar
   arrays (agents.market.cache). Re-importing the same file changes nothing.

Stored bars absent from the file are kept: an import adds and corrects, it never deletes. The
accepted formats (agents.market.csvparse, agents.market.csvformat) are in README "Market data".
"""

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import transaction

from agents.market.cache import mark_bars_changed
from agents.market.csvformat import parse_timestamp as _parse_timestamp
from agents.market.csvparse import (
    FIELDS,
    MAX_ERRORS,
    CsvImportError,
    ImportOptions,
    ParsedBar,
    ParseReport,
    parse_bars,
    parse_bars_csv,
)
from agents.market.models import DEFAULT_BARS_PER_YEAR, BarInterval, Instrument, PriceBar

logger = logging.getLogger(__name__)

VALUE_FIELDS = ("open", "high", "low", "close", "volume")
# Rows classified and written per statement; 500 rows x 7 columns stays far below SQLite's
# 32,766 bound parameters and gives the progress callback ~10% steps on a 5,000-bar file.
BATCH_SIZE = 500
SYMBOL_MAX_LENGTH = Instrument._meta.get_field("symbol").max_length
NAME_MAX_LENGTH = Instrument._meta.get_field("name").max_length

__all__ = [
    "FIELDS",
    "MAX_ERRORS",
    "CsvImportError",
    "ImportOptions",
    "ImportResult",
    "ParseReport",
    "ParsedBar",
    "import_bars_csv",
    "import_parsed_bars",
    "parse_bars",
    "parse_bars_csv",
    "parse_timestamp",
]


def parse_timestamp(text):
    """An ISO 8601 date or datetime (or epoch seconds / ms) as an aware UTC datetime; None if unparseable."""
    parsed = _parse_timestamp(text)
    return parsed.value if parsed else None


@dataclass(frozen=True)
class ImportResult:
    instrument: Instrument
    created: int
    updated: int
    unchanged: int
    total: int  # bars read from the file (after skipping)
    notes: tuple = ()  # what was detected, skipped or filled (ParseReport.notes)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


# --- the import -----------------------------------------------------------------------------------------


def _check_arguments(symbol, name, interval, bars_per_year):
    errors = []
    symbol = (symbol or "").strip()
    if not symbol:
        errors.append("symbol: required")
    elif len(symbol) > SYMBOL_MAX_LENGTH:
        errors.append(f"symbol: at most {SYMBOL_MAX_LENGTH} characters (got {len(symbol)})")
    if name and len(name) > NAME_MAX_LENGTH:
        errors.append(f"name: at most {NAME_MAX_LENGTH} characters (got {len(name)})")
    if interval is not None and interval not in BarInterval.values:
        errors.append(f"interval: {interval!r} is not one of {', '.join(BarInterval.values)}")
    if bars_per_year is not None:
        try:
            ok = math.isfinite(float(bars_per_year)) and float(bars_per_year) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append(f"bars_per_year: must be a positive number (got {bars_per_year!r})")
    if errors:
        raise CsvImportError(errors)
    return symbol


def _check_interval(instrument, interval):
    if interval is not None and interval != instrument.bar_interval:
        raise CsvImportError(
            [
                f"interval: instrument {instrument.symbol} already exists with bar interval "
                f"{instrument.bar_interval!r}, not {interval!r}; import {interval!r} bars under another symbol"
            ]
        )


def _check_range(instrument, has_range):
    """Close-only bars and OHLC bars never mix in one instrument (strategies read its flag)."""
    if instrument.has_intrabar_range == has_range or not instrument.bars.exists():
        return
    if has_range:
        raise CsvImportError([f"close_only: instrument {instrument.symbol} holds close-only bars (no intrabar range); "
                              "import this OHLC file under another symbol, or import it with --close-only"])
    raise CsvImportError([f"close_only: instrument {instrument.symbol} holds OHLC bars; a close-only file would "
                          "flatten their ranges: import it under another symbol"])


def _lock_or_create_instrument(symbol, name, interval, bars_per_year, has_range, created_by=None):
    defaults = {
        "created_by": created_by,
        "name": name,
        "bar_interval": interval or BarInterval.DAY,
        "bars_per_year": bars_per_year if bars_per_year is not None else DEFAULT_BARS_PER_YEAR[interval or "1d"],
        "has_intrabar_range": has_range,
    }
    instrument, created = Instrument.objects.get_or_create(symbol=symbol, defaults=defaults)
    if created:
        return instrument
    # Serialise concurrent imports of one instrument (PostgreSQL; SQLite's IMMEDIATE transactions already do).
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    _check_interval(instrument, interval)
    _check_range(instrument, has_range)
    changed = []
    if name and name != instrument.name:
        instrument.name = name
        changed.append("name")
    if bars_per_year is not None and float(bars_per_year) != instrument.bars_per_year:
        instrument.bars_per_year = float(bars_per_year)
        changed.append("bars_per_year")
    if instrument.has_intrabar_range != has_range:  # an instrument without bars takes the file's kind
        instrument.has_intrabar_range = has_range
        changed.append("has_intrabar_range")
    if changed:
        instrument.save(update_fields=changed)
    return instrument


def import_bars_csv(
    path_or_file,
    *,
    symbol: str,
    name: str = "",
    interval: str | None = None,
    bars_per_year: float | None = None,
    columns: Mapping[str, str] | None = None,
    options: ImportOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    read_progress: Callable[[int, int], None] | None = None,
    created_by=None,
) -> ImportResult:
    """Import a bar file (a path or an open file) into instrument `symbol`: all or nothing.

    The instrument is created if missing (interval defaults to 1d and bars_per_year to
    DEFAULT_BARS_PER_YEAR[interval]); an existing one must have the same interval (interval=None
    means "whatever it has"); a given name or bars_per_year updates it. `options` says how to read
    the file (ImportOptions: close_only, missing, adjusted, non_positive, timezone, columns);
    `columns` alone is a shortcut for ImportOptions(columns=...). `progress(done, total)` is called
    after each batch of rows written, `read_progress(done, total)` while the file is read (outside
    the transaction); `created_by` is recorded on an instrument this import creates. Raises
    CsvImportError, having written nothing, when the arguments or any line of the file are invalid.
    """
    options = options or ImportOptions(columns=columns)
    symbol = _check_arguments(symbol, name, interval, bars_per_year)
    existing = Instrument.objects.filter(symbol=symbol).first()
    if existing is not None:
        _check_interval(existing, interval)  # before reading a possibly large file; re-checked under lock
    report = parse_bars(path_or_file, options, progress=read_progress)
    report.raise_if_errors()
    return import_parsed_bars(report.bars, symbol=symbol, name=name, interval=interval, bars_per_year=bars_per_year,
                              close_only=options.close_only, progress=progress, notes=tuple(report.notes()),
                              created_by=created_by)


def import_parsed_bars(bars, *, symbol, name="", interval=None, bars_per_year=None, close_only=False, progress=None,
                       notes=(), created_by=None) -> ImportResult:
    """Upsert validated bars (ParsedBar, oldest first) in one transaction: the writing half of an import."""
    total = len(bars)
    if not total:
        raise CsvImportError(["no bars to import"])
    with transaction.atomic():
        instrument = _lock_or_create_instrument(symbol, name or "", interval, bars_per_year, not close_only,
                                                created_by)
        stored = {
            row[0]: row[1:]
            for row in PriceBar.objects.filter(
                instrument=instrument, timestamp__gte=bars[0].timestamp, timestamp__lte=bars[-1].timestamp
            )
            .order_by()
            .values_list("timestamp", *VALUE_FIELDS)
        }
        created = updated = unchanged = 0
        for start in range(0, total, BATCH_SIZE):
            to_write = []
            for bar in bars[start : start + BATCH_SIZE]:
                old = stored.get(bar.timestamp)
                if old is None:
                    created += 1
                elif tuple(old) != bar.values:
                    updated += 1
                else:
                    unchanged += 1
                    continue
                to_write.append(
                    PriceBar(
                        instrument=instrument,
                        timestamp=bar.timestamp,
                        open=bar.open,
                        high=bar.high,
                        low=bar.low,
                        close=bar.close,
                        volume=bar.volume,
                    )
                )
            if to_write:
                PriceBar.objects.bulk_create(
                    to_write,
                    update_conflicts=True,
                    unique_fields=["instrument", "timestamp"],
                    update_fields=list(VALUE_FIELDS),
                )
            if progress is not None:
                progress(min(start + BATCH_SIZE, total), total)
        if created or updated:
            mark_bars_changed(instrument.pk)
            instrument.refresh_from_db(fields=["data_version"])

    logger.info(
        "imported bars for %s: %d created, %d updated, %d unchanged (data version %d)",
        symbol,
        created,
        updated,
        unchanged,
        instrument.data_version,
    )
    return ImportResult(instrument=instrument, created=created, updated=updated, unchanged=unchanged, total=total,
                        notes=tuple(notes))
