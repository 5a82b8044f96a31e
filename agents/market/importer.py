"""CSV import of OHLCV bars: validate the whole file first, then upsert it in one transaction.

The one service behind `manage.py import_prices`, `manage.py load_sample_data` and any upload
view. A file is either imported completely or not at all:

1. the arguments and the whole file are validated without touching the database; every problem
   is collected (line number, column, rule) and reported together in `CsvImportError.errors`;
2. in one `transaction.atomic()` the instrument is fetched (locked) or created, the bars already
   stored in the file's time range are read once, and each row is classified as created,
   updated (same timestamp, different values) or unchanged; created and updated rows are written
   with `bulk_create(update_conflicts=True)` in batches (an upsert on SQLite and PostgreSQL);
3. if anything changed, `Instrument.data_version` is bumped (`F() + 1`), which invalidates the
   cached bar arrays (agents.market.cache). Re-importing the same file changes nothing.

Bars stored for the instrument but absent from the file are kept: an import adds and corrects,
it never deletes.

Accepted CSV: a header line, then one bar per line, oldest first. Columns are found by name,
case-insensitively: timestamp (or date, datetime, time), open, high, low, close and optionally
volume (0 when absent or blank); other columns are ignored. `columns` maps our field names to
the file's own header names, e.g. {"timestamp": "Date", "close": "Adj Close"}. Timestamps are
ISO 8601 dates (2018-12-31) or datetimes (2018-12-31 15:00:00, 2018-12-31T15:00:00Z,
...+02:00); naive ones are UTC and all are stored in UTC.
"""

import csv
import io
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction

from agents.market.cache import mark_bars_changed
from agents.market.models import DEFAULT_BARS_PER_YEAR, BarInterval, Instrument, PriceBar

logger = logging.getLogger(__name__)

FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
REQUIRED_FIELDS = ("timestamp", "open", "high", "low", "close")
PRICE_FIELDS = ("open", "high", "low", "close")
VALUE_FIELDS = ("open", "high", "low", "close", "volume")
# Header names recognised without a mapping (compared trimmed and case-insensitively), in order of preference.
HEADER_ALIASES = {
    "timestamp": ("timestamp", "datetime", "date", "time", "date_time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
}
MAX_ERRORS = 50
# Rows classified and written per statement; 500 rows x 7 columns stays far below SQLite's
# 32,766 bound parameters and gives the progress callback ~10% steps on a 5,000-bar file.
BATCH_SIZE = 500
SYMBOL_MAX_LENGTH = Instrument._meta.get_field("symbol").max_length
NAME_MAX_LENGTH = Instrument._meta.get_field("name").max_length


class CsvImportError(Exception):
    """The import was refused and nothing was written. `errors` lists every problem found
    (at most MAX_ERRORS, then one line saying how many more), each naming the line and the rule."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class ImportResult:
    instrument: Instrument
    created: int
    updated: int
    unchanged: int
    total: int  # data rows in the file

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


@dataclass(frozen=True)
class ParsedBar:
    line: int
    timestamp: datetime  # aware, UTC
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def values(self):
        return (self.open, self.high, self.low, self.close, self.volume)


class _Errors:
    """Collects messages up to a cap but keeps counting, so the report says how many were left out."""

    def __init__(self, limit=MAX_ERRORS):
        self.limit = limit
        self.messages = []
        self.count = 0

    def add(self, message):
        self.count += 1
        if len(self.messages) < self.limit:
            self.messages.append(message)

    def raise_if_any(self):
        if not self.count:
            return
        messages = list(self.messages)
        if self.count > len(messages):
            left_out = self.count - len(messages)
            messages.append(f"... and {left_out} more errors (only the first {self.limit} are listed)")
        raise CsvImportError(messages)


# --- parsing and validation (no database) -------------------------------------------------------------


def parse_timestamp(text: str) -> datetime | None:
    """An ISO 8601 date or datetime as an aware UTC datetime (naive means UTC); None if unparseable."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _read_text(path_or_file) -> str:
    """The whole file as text: a path, or an open file in text or binary mode (e.g. a Django upload)."""
    if isinstance(path_or_file, str | os.PathLike):
        try:
            data = Path(path_or_file).read_bytes()
        except OSError as exc:
            raise CsvImportError([f"cannot read {os.fspath(path_or_file)}: {exc.strerror or exc}"])
    else:
        data = path_or_file.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CsvImportError([f"the file is not UTF-8 text (undecodable byte at offset {exc.start})"])
    return data.removeprefix("\ufeff")


def _is_blank(row):
    return not any(cell.strip() for cell in row)


def _resolve_columns(header, header_line, columns):
    """{field: column index} for the fields present, or CsvImportError naming the columns found."""
    found = [cell.strip() for cell in header]
    lowered = [cell.lower() for cell in found]
    found_text = ", ".join(repr(c) for c in found)
    errors = []
    mapping = {key: value for key, value in (columns or {}).items() if value}
    for key in mapping:
        if key not in FIELDS:
            errors.append(f"column mapping: unknown field {key!r} (fields are: {', '.join(FIELDS)})")
    index = {}
    for field in FIELDS:
        wanted = mapping.get(field)
        if wanted is not None:
            wanted = str(wanted).strip()
            if wanted in found:
                index[field] = found.index(wanted)
            elif wanted.lower() in lowered:
                index[field] = lowered.index(wanted.lower())
            else:
                errors.append(
                    f"line {header_line}: column mapping {field} -> {wanted!r}: the header has no such column "
                    f"(found: {found_text})"
                )
            continue
        for alias in HEADER_ALIASES[field]:
            if alias in lowered:
                index[field] = lowered.index(alias)
                break
        else:
            if field in REQUIRED_FIELDS:
                errors.append(
                    f"line {header_line}: missing column {field!r} (found: {found_text}); "
                    f"map one of the found columns to {field!r}"
                )
    if errors:
        raise CsvImportError(errors)
    return index


def _fmt(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_bars_csv(path_or_file, *, columns: Mapping[str, str] | None = None) -> list[ParsedBar]:
    """Read and validate a whole OHLCV CSV; the bars oldest first, or CsvImportError listing every problem."""
    reader = csv.reader(io.StringIO(_read_text(path_or_file), newline=""))
    header = None
    try:
        for row in reader:
            if not _is_blank(row):
                header = row
                break
        if header is None:
            raise CsvImportError(
                ["empty file: expected a header line (timestamp,open,high,low,close[,volume]) and at least one bar"]
            )
        header_line = reader.line_num
        index = _resolve_columns(header, header_line, columns)
        labels = {
            field: (header[i].strip() if header[i].strip().lower() == field else f"{header[i].strip()} ({field})")
            for field, i in index.items()
        }
        return _parse_rows(reader, header_line, index, labels)
    except csv.Error as exc:
        raise CsvImportError([f"line {reader.line_num}: malformed CSV: {exc}"])


def _parse_rows(reader, header_line, index, labels):
    errors = _Errors()
    bars = []
    ts_at = index["timestamp"]
    volume_at = index.get("volume")
    width = max(index.values()) + 1
    last_ts = last_line = None  # the latest valid timestamp so far and its line
    for row in reader:
        line = reader.line_num
        if _is_blank(row):
            continue
        if len(row) < width:
            row = row + [""] * (width - len(row))
        row_ok = True

        raw = row[ts_at].strip()
        ts = parse_timestamp(raw) if raw else None
        if not raw:
            errors.add(f"line {line}: column {labels['timestamp']!r}: missing value")
            row_ok = False
        elif ts is None:
            errors.add(
                f"line {line}: column {labels['timestamp']!r}: cannot parse {raw!r} as a date or datetime "
                "(expected ISO 8601, e.g. 2018-12-31 or 2018-12-31 15:00:00)"
            )
            row_ok = False
        elif last_ts is not None and ts <= last_ts:
            if ts == last_ts:
                errors.add(f"line {line}: duplicate timestamp {raw!r} (same as line {last_line})")
            else:
                errors.add(
                    f"line {line}: timestamp {raw!r} is earlier than line {last_line}'s; "
                    "timestamps must be strictly increasing (oldest first)"
                )
            row_ok = False
        else:
            last_ts, last_line = ts, line

        values = {}
        for field in PRICE_FIELDS + (("volume",) if volume_at is not None else ()):
            raw = row[index[field]].strip()
            if not raw:
                if field == "volume":  # volume is optional: a blank cell means none reported
                    values[field] = 0.0
                    continue
                errors.add(f"line {line}: column {labels[field]!r}: missing value")
                row_ok = False
                continue
            try:
                number = float(raw)
            except ValueError:
                number = None
            if number is None or not math.isfinite(number):
                errors.add(f"line {line}: column {labels[field]!r}: {raw!r} is not a finite number")
                row_ok = False
                continue
            values[field] = number
        values.setdefault("volume", 0.0)

        if all(field in values for field in PRICE_FIELDS):
            for field in PRICE_FIELDS:
                if values[field] <= 0:
                    errors.add(f"line {line}: {field} must be positive (got {_fmt(values[field])})")
                    row_ok = False
            low, high = values["low"], values["high"]
            if high < low:
                errors.add(f"line {line}: high ({_fmt(high)}) is below low ({_fmt(low)})")
                row_ok = False
            else:
                for field in ("open", "close"):
                    if not low <= values[field] <= high:
                        errors.add(
                            f"line {line}: {field} ({_fmt(values[field])}) is outside [low, high] = "
                            f"[{_fmt(low)}, {_fmt(high)}]"
                        )
                        row_ok = False
        if values["volume"] < 0:
            errors.add(f"line {line}: volume must not be negative (got {_fmt(values['volume'])})")
            row_ok = False

        if row_ok:
            bars.append(
                ParsedBar(line, ts, values["open"], values["high"], values["low"], values["close"], values["volume"])
            )
    if not errors.count and not bars:
        errors.add(f"line {header_line}: the file has a header but no bars")
    errors.raise_if_any()
    return bars


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


def _lock_or_create_instrument(symbol, name, interval, bars_per_year):
    defaults = {
        "name": name,
        "bar_interval": interval or BarInterval.DAY,
        "bars_per_year": bars_per_year if bars_per_year is not None else DEFAULT_BARS_PER_YEAR[interval or "1d"],
    }
    instrument, created = Instrument.objects.get_or_create(symbol=symbol, defaults=defaults)
    if created:
        return instrument
    # Serialise concurrent imports of one instrument (PostgreSQL; SQLite's IMMEDIATE transactions already do).
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    _check_interval(instrument, interval)
    changed = []
    if name and name != instrument.name:
        instrument.name = name
        changed.append("name")
    if bars_per_year is not None and float(bars_per_year) != instrument.bars_per_year:
        instrument.bars_per_year = float(bars_per_year)
        changed.append("bars_per_year")
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
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import an OHLCV CSV (a path or an open file) into instrument `symbol`: all or nothing.

    The instrument is created if missing (interval defaults to 1d and bars_per_year to
    DEFAULT_BARS_PER_YEAR[interval]); an existing one must have the same interval (interval=None
    means "whatever it has"); a given name or bars_per_year updates it. `columns` maps field names
    (timestamp, open, high, low, close, volume) to the file's header names. `progress(done, total)`
    is called after each batch of rows. Raises CsvImportError, having written nothing, when the
    arguments or any line of the file are invalid.
    """
    symbol = _check_arguments(symbol, name, interval, bars_per_year)
    existing = Instrument.objects.filter(symbol=symbol).first()
    if existing is not None:
        _check_interval(existing, interval)  # before reading a possibly large file; re-checked under lock
    bars = parse_bars_csv(path_or_file, columns=columns)
    total = len(bars)

    with transaction.atomic():
        instrument = _lock_or_create_instrument(symbol, name or "", interval, bars_per_year)
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
    return ImportResult(instrument=instrument, created=created, updated=updated, unchanged=unchanged, total=total)
