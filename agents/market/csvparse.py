"""Parse and validate a whole bar file without touching the database (see agents.market.importer).

`parse_bars(file, options)` reads every line and returns a ParseReport: the valid bars, every
error (line, column, rule), the rows skipped or filled under the missing-value policy, and what
was detected (delimiter, decimal comma, columns). `parse_bars_csv` raises CsvImportError when
there is any error; the upload preview shows the report as it is.
"""

import csv
from datetime import UTC

from agents.market import csvformat as fmt
from agents.market.csvreport import (
    FIELDS,
    MAX_ERRORS,
    CsvImportError,
    ImportOptions,
    ParsedBar,
    ParseReport,
)
from agents.market.csvreport import lines_text as _lines

__all__ = [
    "FIELDS",
    "MAX_ERRORS",
    "CsvImportError",
    "ImportOptions",
    "ParseReport",
    "ParsedBar",
    "parse_bars",
    "parse_bars_csv",
]

PRICE_FIELDS = ("open", "high", "low", "close")
READ_PROGRESS_ROWS = 1000
# Header names recognised without a mapping (compared trimmed and case-insensitively), in order of preference.
HEADER_ALIASES = {
    "timestamp": ("timestamp", "datetime", "date", "time", "date_time", "observation_date"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted close", "adjusted_close"),
}


# --- the header ---------------------------------------------------------------------------------------
def _find(found, lowered, name):
    name = str(name).strip()
    if name in found:
        return found.index(name)
    return lowered.index(name.lower()) if name.lower() in lowered else None


def _resolve_columns(header, line, options, report):
    """{field: column index}, or errors in the report naming the columns found."""
    found = [cell.strip() for cell in header]
    lowered = [cell.lower() for cell in found]
    found_text = ", ".join(repr(c) for c in found)
    mapping = {key: value for key, value in (options.columns or {}).items() if value and key in FIELDS}
    index = {}
    for name in FIELDS:
        if name in mapping:
            at = _find(found, lowered, mapping[name])
            if at is None:
                report.errors.add(f"line {line}: column mapping {name} -> {mapping[name]!r}: the header has no such "
                                  f"column (found: {found_text})")
            else:
                index[name] = at
            continue
        at = next((lowered.index(a) for a in HEADER_ALIASES[name] if a in lowered), None)
        if at is not None:
            index[name] = at
    if "timestamp" not in index and "timestamp" not in mapping:
        report.errors.add(f"line {line}: missing column 'timestamp' (found: {found_text}); name it Date, Datetime, "
                          "Time or timestamp, or map one of the found columns to 'timestamp'")
    used = {index.get("timestamp"), index.get("volume")}
    others = [i for i in range(len(found)) if i not in used and found[i]]
    if options.close_only:
        if options.adjusted:
            if "adj_close" not in index:
                report.errors.add(f"line {line}: --adjusted needs an 'Adj Close' column (found: {found_text})")
            else:
                index["close"] = index.pop("adj_close")
        elif "close" not in index and "close" not in mapping:
            if len(others) == 1:
                index["close"] = others[0]
            else:
                report.errors.add(
                    f"line {line}: close only: the file has {len(others)} value columns ("
                    + ", ".join(repr(found[i]) for i in others)
                    + "); name the one to use with --close-column")
        for name in ("open", "high", "low", "adj_close"):
            index.pop(name, None)
        return index
    missing = [name for name in PRICE_FIELDS if name not in index and name not in mapping]
    if missing and len(others) == 1 and "timestamp" in index:
        report.errors.add(
            f"line {line}: the file has one value column ({found[others[0]]!r}) besides the timestamp: "
            "if it is a close-only series (e.g. from FRED), import it with --close-only")
        return index
    for name in missing:
        report.errors.add(f"line {line}: missing column {name!r} (found: {found_text}); "
                          f"map one of the found columns to {name!r}")
    if options.adjusted and "adj_close" not in index:
        report.errors.add(f"line {line}: --adjusted needs an 'Adj Close' column (found: {found_text})")
    elif not options.adjusted and "adj_close" in index:
        report.ignored.append(f"column {found[index.pop('adj_close')]!r} ignored (pass --adjusted to use it)")
    return index


# --- the rows -----------------------------------------------------------------------------------------
def parse_bars(path_or_file, options: ImportOptions | None = None, progress=None) -> ParseReport:
    """Read and validate a whole bar file; never raises for the file's content (see the report).

    `progress(rows_done, rows_total)` is called every READ_PROGRESS_ROWS rows and at the end.
    """
    options = options or ImportOptions()
    report = ParseReport(close_only=options.close_only)
    for problem in options.problems():
        report.errors.add(problem)
    try:
        text = fmt.read_text(path_or_file)
    except fmt.FormatError as exc:
        report.errors.add(str(exc))
        return report
    report.delimiter = fmt.sniff_delimiter(fmt.first_line(text))
    reader = fmt.reader_for(text, report.delimiter)
    try:
        header = next((row for row in reader if not _is_blank(row)), None)
        if header is None:
            report.errors.add("empty file: expected a header line (timestamp,open,high,low,close[,volume], or "
                              "a date and one value with --close-only) and at least one bar")
            return report
        header_line = reader.line_num
        report.header = [c.strip() for c in header]
        index = _resolve_columns(header, header_line, options, report)
        if not report.ok or "timestamp" not in index:
            return report
        report.columns = {name: report.header[i] for name, i in index.items()}
        rows = [(reader.line_num, row) for row in reader if not _is_blank(row)]
    except csv.Error as exc:
        report.errors.add(f"line {reader.line_num}: malformed CSV: {exc}")
        return report
    value_columns = [i for name, i in index.items() if name != "timestamp"]
    report.decimal_comma = fmt.sniff_decimal_comma((row for _, row in rows), report.delimiter, value_columns)
    _Rows(options, report, index).parse(rows, progress)
    if report.ok and not report.bars:
        if report.rows:
            report.errors.add(f"every one of the {report.rows} rows was skipped: nothing to import")
        else:
            report.errors.add(f"line {header_line}: the file has a header but no bars")
    return report


def parse_bars_csv(path_or_file, *, columns=None, options: ImportOptions | None = None) -> list[ParsedBar]:
    """The bars of a whole file, oldest first, or CsvImportError listing every problem."""
    if options is None:
        options = ImportOptions(columns=columns)
    report = parse_bars(path_or_file, options)
    report.raise_if_errors()
    return report.bars


def _is_blank(row):
    return not any(cell.strip() for cell in row)


def _fmt(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Rows:
    def __init__(self, options, report, index):
        self.o, self.r, self.index = options, report, index
        self.zone = fmt.zone_or_none(options.timezone) or UTC
        self.labels = {
            name: (report.header[i] if report.header[i].lower() == name else f"{report.header[i]} ({name})")
            for name, i in index.items()
        }
        self.prices = ("close",) if options.close_only else PRICE_FIELDS + (("adj_close",) if options.adjusted else ())
        self.width = max(index.values()) + 1
        self.last_ts = self.last_line = self.kind = self.kind_line = None
        self.prev_raw = None  # the previous bar's close as written in the file (before --adjusted)
        self.prev_factor = 1.0
        self.missing_lines, self.bad_price_lines = [], []

    def parse(self, rows, progress=None):
        total = len(rows)
        for line, row in rows:
            self.r.rows += 1
            if progress is not None and self.r.rows % READ_PROGRESS_ROWS == 0:
                progress(self.r.rows, total)
            if len(row) < self.width:
                row = row + [""] * (self.width - len(row))
            self._row(line, row)
        if self.missing_lines:
            self.r.advice.append(
                f"{len(self.missing_lines)} rows have missing values (lines {_lines(self.missing_lines)}); to import "
                "anyway, drop them with --missing skip or carry the previous close forward with --missing ffill")
        if self.bad_price_lines:
            self.r.advice.append(
                f"{len(self.bad_price_lines)} rows have a zero or negative price (lines {_lines(self.bad_price_lines)})"
                ": the backtest engine and the paper broker compute returns as price ratios and size positions in "
                "units, so they cannot trade through such a price and the lab does not import it. Remove those "
                "rows, import a series that stays positive (another contract, or the spread as a separate "
                "instrument), or drop them with --non-positive skip")
        if progress is not None:
            progress(total, total)

    def _timestamp(self, line, raw):
        label = self.labels["timestamp"]
        if fmt.is_missing(raw):
            self.r.errors.add(f"line {line}: column {label!r}: missing value")
            return None
        ts = fmt.parse_timestamp(raw, self.zone)
        if ts is None:
            self.r.errors.add(f"line {line}: column {label!r}: cannot parse {raw!r} as a date or datetime (expected "
                              "ISO 8601, e.g. 2018-12-31 or 2018-12-31 15:00:00+02:00, or epoch seconds or ms)")
            return None
        if self.kind is None:
            self.kind, self.kind_line = ts.kind, line
        elif ts.kind != self.kind:
            self.r.errors.add(f"line {line}: timestamp {raw!r} is written {ts.kind} but line {self.kind_line}'s is "
                              f"{self.kind}; a file must not mix them (naive timestamps would be read in one zone)")
            return None
        if self.last_ts is not None and ts.value <= self.last_ts:
            if ts.value == self.last_ts:
                self.r.errors.add(f"line {line}: duplicate timestamp {raw!r} (same as line {self.last_line})")
            else:
                self.r.errors.add(f"line {line}: timestamp {raw!r} is earlier than line {self.last_line}'s; "
                                  "timestamps must be strictly increasing (oldest first)")
            return None
        self.last_ts, self.last_line = ts.value, line
        return ts.value

    def _values(self, line, row):
        """({field: number}, [missing price fields]); None when a cell is not a number."""
        values, missing, ok = {}, [], True
        for name in (*self.prices, "volume"):
            if name not in self.index:
                continue
            raw = row[self.index[name]].strip()
            if fmt.is_missing(raw):
                if name == "volume":  # optional: a blank cell means none reported
                    values[name] = 0.0
                else:
                    missing.append(name)
                continue
            number = fmt.parse_number(raw, self.r.decimal_comma)
            if number is None:
                self.r.errors.add(f"line {line}: column {self.labels[name]!r}: {raw!r} is not a finite number")
                ok = False
                continue
            values[name] = number
        values.setdefault("volume", 0.0)
        return (values, missing) if ok else (None, missing)

    def _row(self, line, row):
        ts = self._timestamp(line, row[self.index["timestamp"]])
        values, missing = self._values(line, row)
        if missing:
            if self.o.missing == "skip" or (self.o.missing == "ffill" and self.prev_raw is None):
                self.r.skipped_missing.append(line)
                return
            if self.o.missing == "fail":
                for name in missing:
                    self.r.errors.add(f"line {line}: column {self.labels[name]!r}: missing value")
                self.missing_lines.append(line)
                return
        if values is None:
            return
        if missing:  # ffill
            for name in missing:
                values[name] = self.prev_raw
            if "adj_close" in missing:
                values["adj_close"] = values["close"] * self.prev_factor
            self.r.filled.append(line)
        if self.o.close_only:
            values.update(open=values["close"], high=values["close"], low=values["close"])
        if self._non_positive(line, values):
            return
        raw_close = values["close"]
        if self.o.adjusted and not self.o.close_only:
            factor = values["adj_close"] / values["close"]
            self.prev_factor = factor
            values = {**values, "open": values["open"] * factor, "high": values["high"] * factor,
                      "low": values["low"] * factor, "close": values["adj_close"]}
        if missing:
            values["high"] = max(values[n] for n in PRICE_FIELDS)
            values["low"] = min(values[n] for n in PRICE_FIELDS)
        if not self._consistent(line, values) or ts is None:
            return
        self.prev_raw = raw_close
        self.r.bars.append(ParsedBar(line, ts, values["open"], values["high"], values["low"], values["close"],
                                     values["volume"]))

    def _non_positive(self, line, values):
        bad = [n for n in self.prices if values.get(n) is not None and values[n] <= 0]
        if not bad:
            return False
        if self.o.non_positive == "skip":
            self.r.skipped_non_positive.append(line)
            return True
        for name in bad:
            self.r.errors.add(f"line {line}: {name} must be positive (got {_fmt(values[name])})")
        self.bad_price_lines.append(line)
        return True

    def _consistent(self, line, values):
        ok = True
        if values["volume"] < 0:
            self.r.errors.add(f"line {line}: volume must not be negative (got {_fmt(values['volume'])})")
            ok = False
        low, high = values["low"], values["high"]
        if high < low:
            self.r.errors.add(f"line {line}: high ({_fmt(high)}) is below low ({_fmt(low)})")
            return False
        for name in ("open", "close"):
            # Adjusted prices are products of floats: allow their rounding.
            slack = 1e-9 * high if self.o.adjusted else 0.0
            if not low - slack <= values[name] <= high + slack:
                self.r.errors.add(f"line {line}: {name} ({_fmt(values[name])}) is outside [low, high] = "
                                  f"[{_fmt(low)}, {_fmt(high)}]")
                ok = False
        return ok
