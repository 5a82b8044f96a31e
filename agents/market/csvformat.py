"""The low-level reading of bar files: text, delimiter, decimal comma, numbers, timestamps.

Pure Python, no Django and no database, so the importer, the upload preview and the bar feeds
share one definition of what a cell means:

- text: UTF-8 with or without a BOM; LF, CRLF or CR line endings (the csv module's universal newlines);
- delimiter: ``,`` ``;`` or tab, whichever occurs most often (outside quotes) in the header line;
- decimal comma: when the delimiter is not ``,`` and a value cell reads like ``1,5`` or
  ``1.234,5``; then a cell with a comma has its dots (thousands) removed and its comma made a
  point; a cell without a comma is read as written;
- missing values: an empty cell or one of MISSING_MARKERS (case-insensitive);
- timestamps: ISO 8601 dates or datetimes, with ``Z``/an offset or a trailing zone name
  (``2020-03-08 09:30 America/New_York``, ``... UTC``), epoch seconds (9-10 digits) or
  milliseconds (11-13 digits), or YYYYMMDD. Naive ones are in the import's time zone (UTC
  unless told). All come back aware, in UTC.
"""

import csv
import io
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
# Compared after strip() and lower().
MISSING_MARKERS = frozenset({"", ".", "na", "n/a", "#n/a", "nan", "null", "none"})
_DECIMAL_COMMA = re.compile(r"^[-+]?(\d{1,3}(\.\d{3})+|\d+),\d+$")
_EPOCH = re.compile(r"^\d+(\.\d+)?$")
EPOCH_MS_MIN = 10**11  # 1973-03-03 in ms; as seconds it would be the year 5138


class TimestampKind:
    """How a file writes its timestamps; one file may not mix kinds (see parse_timestamp)."""

    NAIVE = "without a UTC offset"
    ZONED = "with a UTC offset or zone"
    EPOCH_S = "as epoch seconds"
    EPOCH_MS = "as epoch milliseconds"


class FormatError(Exception):
    """The file cannot be read at all (not UTF-8, unreadable)."""


def read_text(path_or_file) -> str:
    """The whole file as text: a path, or an open file in text or binary mode (e.g. a Django upload)."""
    if isinstance(path_or_file, str | os.PathLike):
        try:
            data = Path(path_or_file).read_bytes()
        except OSError as exc:
            raise FormatError(f"cannot read {os.fspath(path_or_file)}: {exc.strerror or exc}")
    else:
        data = path_or_file.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FormatError(
                f"the file is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8 and retry"
            )
    return data.removeprefix("\ufeff")


def _count_outside_quotes(line, char):
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def sniff_delimiter(header_line: str) -> str:
    """The delimiter that occurs most often in the header line (``,`` when none does)."""
    counts = {d: _count_outside_quotes(header_line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties keep DELIMITERS order: comma first
    return best if counts[best] else ","


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def sniff_decimal_comma(rows, delimiter, value_columns, sample=200) -> bool:
    """True when the delimiter is not a comma and a value cell of the first rows reads like 1,5."""
    if delimiter == ",":
        return False
    for n, row in enumerate(rows):
        if n >= sample:
            break
        for i in value_columns:
            if i < len(row) and _DECIMAL_COMMA.match(row[i].strip()):
                return True
    return False


def is_missing(raw: str) -> bool:
    return raw.strip().lower() in MISSING_MARKERS


def parse_number(raw: str, decimal_comma=False) -> float | None:
    """A finite float, or None when the cell is not one."""
    text = raw.strip()
    if decimal_comma and "," in text:
        text = text.replace(".", "").replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Timestamp:
    value: datetime  # aware, UTC
    kind: str  # a TimestampKind


def _zone(name):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_or_none(name):
    """ZoneInfo for an IANA name (``UTC``, ``Europe/Paris``), None if unknown."""
    return _zone(name) if name else None


def parse_timestamp(text: str, naive_zone=UTC) -> Timestamp | None:
    """The cell as an aware UTC datetime with its kind, or None if unparseable."""
    text = text.strip()
    if _EPOCH.match(text) and len(text.split(".")[0]) != 8:  # 8 digits: YYYYMMDD, below
        digits = len(text.split(".")[0])
        if not 9 <= digits <= 13:
            return None
        number = float(text)
        ms = number >= EPOCH_MS_MIN
        seconds = number / 1000 if ms else number
        value = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
        return Timestamp(value, TimestampKind.EPOCH_MS if ms else TimestampKind.EPOCH_S)
    zone = None
    head, _, tail = text.rpartition(" ")
    if head and tail and not tail[0].isdigit() and tail[0] not in "+-":
        zone = _zone(tail)
        if zone is None:
            return None
        text = head
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        if zone is not None:
            return None  # both an offset and a zone name: ambiguous
        return Timestamp(value.astimezone(UTC), TimestampKind.ZONED)
    if zone is not None:
        return Timestamp(value.replace(tzinfo=zone).astimezone(UTC), TimestampKind.ZONED)
    return Timestamp(value.replace(tzinfo=naive_zone).astimezone(UTC), TimestampKind.NAIVE)


def reader_for(text: str, delimiter: str):
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
