"""What a parse of a bar file produces: the options, the bars, the errors and the report.

Shared by agents.market.csvparse (which fills them) and the importer, the upload preview and the
feeds (which read them).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agents.market import csvformat as fmt

FIELDS = ("timestamp", "open", "high", "low", "close", "volume", "adj_close")
MISSING_POLICIES = ("fail", "skip", "ffill")
NON_POSITIVE_POLICIES = ("fail", "skip")
MAX_ERRORS = 50
SHOWN_LINES = 10  # "first lines affected" in notes


class CsvImportError(Exception):
    """The import was refused and nothing was written. `errors` lists every problem found
    (at most MAX_ERRORS, then one line saying how many more), each naming the line and the rule."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class ImportOptions:
    """How to read a file. `columns` maps field names (FIELDS) to the file's header names."""

    columns: Mapping[str, str] | None = None
    close_only: bool = False  # one value column: open = high = low = close, no intrabar range
    missing: str = "fail"  # fail | skip (drop the row) | ffill (carry the previous close forward)
    adjusted: bool = False  # use Adj Close; open, high and low are scaled by adj_close / close
    non_positive: str = "fail"  # fail | skip (drop the row)
    timezone: str = ""  # the zone of naive timestamps; empty means UTC

    def problems(self):
        errors = []
        if self.missing not in MISSING_POLICIES:
            errors.append(f"missing: {self.missing!r} is not one of {', '.join(MISSING_POLICIES)}")
        if self.non_positive not in NON_POSITIVE_POLICIES:
            errors.append(f"non_positive: {self.non_positive!r} is not one of {', '.join(NON_POSITIVE_POLICIES)}")
        if self.timezone and fmt.zone_or_none(self.timezone) is None:
            errors.append(f"timezone: {self.timezone!r} is not a known IANA time zone (e.g. UTC, America/New_York)")
        for key in self.columns or {}:
            if key not in FIELDS:
                errors.append(f"column mapping: unknown field {key!r} (fields are: {', '.join(FIELDS)})")
        return errors


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

    def listing(self):
        messages = list(self.messages)
        if self.count > len(messages):
            left_out = self.count - len(messages)
            messages.append(f"... and {left_out} more errors (only the first {self.limit} are listed)")
        return messages


def lines_text(numbers):
    shown = ", ".join(str(n) for n in numbers[:SHOWN_LINES])
    return shown + (", ..." if len(numbers) > SHOWN_LINES else "")


@dataclass
class ParseReport:
    bars: list = field(default_factory=list)
    errors: _Errors = field(default_factory=_Errors)
    advice: list = field(default_factory=list)  # appended after the line errors
    header: list = field(default_factory=list)
    columns: dict = field(default_factory=dict)  # field -> header name used
    delimiter: str = ","
    decimal_comma: bool = False
    close_only: bool = False
    rows: int = 0  # data rows read (blank lines excluded)
    skipped_missing: list = field(default_factory=list)  # line numbers
    filled: list = field(default_factory=list)
    skipped_non_positive: list = field(default_factory=list)
    ignored: list = field(default_factory=list)  # notes on columns read but not used

    @property
    def ok(self):
        return not self.errors.count

    def error_list(self):
        return self.errors.listing() + self.advice

    def notes(self):
        notes = [f"delimiter: {fmt.DELIMITER_NAMES[self.delimiter]}"
                 + ("; decimal comma" if self.decimal_comma else "")]
        if self.close_only:
            notes.append(f"close only: column {self.columns.get('close')!r}; the bars have no intrabar range")
        if self.skipped_missing:
            notes.append(f"{len(self.skipped_missing)} rows with missing values skipped "
                         f"(lines {lines_text(self.skipped_missing)})")
        if self.filled:
            notes.append(f"{len(self.filled)} rows with missing values filled with the previous close "
                         f"(lines {lines_text(self.filled)})")
        if self.skipped_non_positive:
            notes.append(f"{len(self.skipped_non_positive)} rows with a non-positive price skipped "
                         f"(lines {lines_text(self.skipped_non_positive)})")
        return notes + self.ignored

    def raise_if_errors(self):
        if not self.ok:
            raise CsvImportError(self.error_list())


