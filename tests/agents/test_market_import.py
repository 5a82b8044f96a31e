"""CSV import of bars (agents.market.importer) and the import_prices / load_sample_data commands."""

import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.market import importer
from agents.market.importer import MAX_ERRORS, CsvImportError, import_bars_csv
from agents.market.models import Instrument, PriceBar
from agents.market.samples import SAMPLE_DATASETS

pytestmark = pytest.mark.django_db

HEADER = "timestamp,open,high,low,close,volume"
GOOD_ROWS = [
    "2018-01-02,10,11,9,10.5,100",
    "2018-01-03,10.5,12,10,11.5,200",
    "2018-01-04,11.5,12.5,11,12,300",
]


def write_csv(tmp_path, lines, name="bars.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n" if lines else "")
    return path


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def snapshot(symbol="TEST"):
    """(bar count, data_version or None) of an instrument: what a refused import must leave alone."""
    instrument = Instrument.objects.filter(symbol=symbol).first()
    return PriceBar.objects.count(), instrument.data_version if instrument else None


@pytest.fixture
def existing(tmp_path):
    """An instrument TEST with the three good bars already imported (data_version 1)."""
    result = import_bars_csv(write_csv(tmp_path, [HEADER, *GOOD_ROWS], "seed.csv"), symbol="TEST")
    assert result.instrument.data_version == 1
    return result.instrument


# --- a good import --------------------------------------------------------------------------------------


def test_import_creates_instrument_and_bars(tmp_path):
    result = import_bars_csv(write_csv(tmp_path, [HEADER, *GOOD_ROWS]), symbol="TEST", name="Test index")

    assert (result.created, result.updated, result.unchanged, result.total) == (3, 0, 0, 3)
    assert result.changed
    instrument = Instrument.objects.get(symbol="TEST")
    assert result.instrument == instrument
    assert (instrument.name, instrument.bar_interval, instrument.bars_per_year, instrument.data_version) == (
        "Test index",
        "1d",
        252,
        1,
    )
    rows = list(
        instrument.bars.order_by("timestamp").values_list("timestamp", "open", "high", "low", "close", "volume")
    )
    assert rows == [
        (utc(2018, 1, 2), 10, 11, 9, 10.5, 100),
        (utc(2018, 1, 3), 10.5, 12, 10, 11.5, 200),
        (utc(2018, 1, 4), 11.5, 12.5, 11, 12, 300),
    ]


def test_bars_per_year_defaults_by_interval_or_is_given(tmp_path):
    path = write_csv(tmp_path, [HEADER, "2018-01-02 10:00:00,1,2,1,2,0"])
    assert import_bars_csv(path, symbol="H", interval="1h").instrument.bars_per_year == 24 * 5 * 52
    assert import_bars_csv(path, symbol="W", interval="1w").instrument.bars_per_year == 52
    assert import_bars_csv(path, symbol="C", interval="1h", bars_per_year=8760).instrument.bars_per_year == 8760


def test_volume_column_is_optional_and_blank_volume_is_zero(tmp_path):
    import_bars_csv(write_csv(tmp_path, ["timestamp,open,high,low,close", "2018-01-02,1,2,1,2"]), symbol="NOVOL")
    import_bars_csv(write_csv(tmp_path, [HEADER, "2018-01-02,1,2,1,2,"], "blank.csv"), symbol="BLANK")
    assert list(PriceBar.objects.values_list("volume", flat=True)) == [0, 0]


def test_dates_and_datetimes_in_every_iso_form_are_stored_in_utc(tmp_path):
    naive = write_csv(
        tmp_path,
        [HEADER, "2018-12-31,1,2,1,2,0", "2018-12-31 15:00:00,1,2,1,2,0", "2018-12-31T16:00:00,1,2,1,2,0"],
        "naive.csv",
    )
    zoned = write_csv(
        tmp_path,
        [
            HEADER,
            "2018-12-31T17:00:00Z,1,2,1,2,0",
            "2018-12-31T20:30:00+02:00,1,2,1,2,0",  # 18:30 UTC
            "2018-12-31 14:00 America/New_York,1,2,1,2,0",  # 19:00 UTC
            "2018-12-31 20:00 UTC,1,2,1,2,0",
        ],
        "zoned.csv",
    )
    import_bars_csv(naive, symbol="TZ", interval="1h")
    import_bars_csv(zoned, symbol="TZ", interval="1h")
    assert list(PriceBar.objects.order_by("timestamp").values_list("timestamp", flat=True)) == [
        utc(2018, 12, 31),
        utc(2018, 12, 31, 15),
        utc(2018, 12, 31, 16),
        utc(2018, 12, 31, 17),
        utc(2018, 12, 31, 18, 30),
        utc(2018, 12, 31, 19),
        utc(2018, 12, 31, 20),
    ]


def test_accepts_open_files_in_binary_or_text_mode_with_bom_and_blank_lines():
    text = "\ufeff" + HEADER + "\r\n" + "\r\n".join(GOOD_ROWS) + "\r\n\r\n"
    assert import_bars_csv(io.BytesIO(text.encode("utf-8")), symbol="BIN").created == 3
    assert import_bars_csv(io.StringIO(text), symbol="TXT").created == 3


def test_progress_is_reported_up_to_the_total(tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    calls = []
    import_bars_csv(
        write_csv(tmp_path, [HEADER, *GOOD_ROWS]), symbol="TEST", progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(2, 3), (3, 3)]


# --- column mapping --------------------------------------------------------------------------------------


def test_column_mapping_reads_other_header_names(tmp_path):
    path = write_csv(
        tmp_path,
        [
            "Date,Open,High,Low,Close,Adj Close,Volume",
            "2018-01-02,10,11,9,10.5,10.4,100",
            "2018-01-03,10.5,12,10,11.5,11.3,200",
        ],
    )
    result = import_bars_csv(path, symbol="YF", columns={"timestamp": "Date", "close": "Adj Close"})
    assert result.created == 2
    assert list(PriceBar.objects.order_by("timestamp").values_list("close", flat=True)) == [10.4, 11.3]


def test_common_header_names_need_no_mapping(tmp_path):
    # Case-insensitive names, "Date" for the timestamp, extra columns ignored.
    path = write_csv(tmp_path, ["Date,OPEN,High,Low,Close,Adj Close,Volume", "2018-01-02,10,11,9,10.5,10.4,100"])
    import_bars_csv(path, symbol="YF")
    assert PriceBar.objects.get().close == 10.5


def test_column_mapping_without_volume(tmp_path):
    path = write_csv(tmp_path, ["when;o;h;l;c".replace(";", ","), "2018-01-02,10,11,9,10.5"])
    columns = {"timestamp": "when", "open": "o", "high": "h", "low": "l", "close": "c"}
    import_bars_csv(path, symbol="MAP", columns=columns)
    bar = PriceBar.objects.get()
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (10, 11, 9, 10.5, 0)


# --- validation: every rule names the line and the rule, and nothing is written ----------------------------

BAD_FILES = {
    "missing column": (
        ["timestamp,open,high,low,volume", "2018-01-02,10,11,9,100"],
        None,
        ["line 1: missing column 'close'", "found: 'timestamp', 'open', 'high', 'low', 'volume'"],
    ),
    "mapped column absent": (
        [HEADER, *GOOD_ROWS],
        {"close": "Adj Close"},
        ["line 1: column mapping close -> 'Adj Close'", "no such column", "found: 'timestamp', 'open'"],
    ),
    "unknown field in mapping": (
        [HEADER, *GOOD_ROWS],
        {"vwap": "close"},
        ["unknown field 'vwap'", "fields are: timestamp, open, high, low, close, volume, adj_close"],
    ),
    "missing value": (
        [HEADER, GOOD_ROWS[0], "2018-01-03,10.5,12,10,,200"],
        None,
        ["line 3: column 'close': missing value"],
    ),
    "missing timestamp": (
        [HEADER, ",10,11,9,10.5,100"],
        None,
        ["line 2: column 'timestamp': missing value"],
    ),
    "short row": (
        [HEADER, "2018-01-02,10,11"],
        None,
        ["line 2: column 'low': missing value", "line 2: column 'close': missing value"],
    ),
    "unparseable number": (
        [HEADER, "2018-01-02,abc,11,9,10.5,100"],
        None,
        ["line 2: column 'open': 'abc' is not a finite number"],
    ),
    "not finite": (
        [HEADER, "2018-01-02,10,inf,9,10.5,-inf"],
        None,
        ["line 2: column 'high': 'inf' is not a finite number", "line 2: column 'volume': '-inf' is not a finite"],
    ),
    "unparseable timestamp": (
        [HEADER, "31/12/2018,10,11,9,10.5,100"],
        None,
        ["line 2: column 'timestamp': cannot parse '31/12/2018' as a date or datetime"],
    ),
    "mapped column named in message": (
        ["Date,Open,High,Low,Adj Close", "2018-01-02,10,11,9,x"],
        {"close": "Adj Close"},
        ["line 2: column 'Adj Close (close)': 'x' is not a finite number"],
    ),
    "duplicate timestamp": (
        [HEADER, GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1]],
        None,
        ["line 4: duplicate timestamp '2018-01-03' (same as line 3)"],
    ),
    "decreasing timestamp": (
        [HEADER, GOOD_ROWS[1], GOOD_ROWS[0]],
        None,
        ["line 3: timestamp '2018-01-02' is earlier than line 2's", "strictly increasing"],
    ),
    "high below low": (
        [HEADER, "2018-01-02,10,9,11,10,100"],
        None,
        ["line 2: high (9) is below low (11)"],
    ),
    "open outside range": (
        [HEADER, "2018-01-02,12,11,9,10,100"],
        None,
        ["line 2: open (12) is outside [low, high] = [9, 11]"],
    ),
    "close outside range": (
        [HEADER, "2018-01-02,10,11,9,8.5,100"],
        None,
        ["line 2: close (8.5) is outside [low, high] = [9, 11]"],
    ),
    "non-positive price": (
        [HEADER, "2018-01-02,1,2,0,1,100", "2018-01-03,-1,-1,-1,-1,100"],
        None,
        ["line 2: low must be positive (got 0)", "line 3: open must be positive (got -1)"],
    ),
    "negative volume": (
        [HEADER, "2018-01-02,10,11,9,10.5,-5"],
        None,
        ["line 2: volume must not be negative (got -5)"],
    ),
    "empty file": ([], None, ["empty file"]),
    "blank lines only": (["", "  ", ""], None, ["empty file"]),
    "header only": ([HEADER], None, ["line 1: the file has a header but no bars"]),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
@pytest.mark.parametrize("symbol", ["TEST", "NEW"], ids=["existing", "new"])
def test_invalid_file_is_refused_naming_line_and_rule_and_writes_nothing(tmp_path, existing, case, symbol):
    lines, columns, expected = BAD_FILES[case]
    before = snapshot(symbol)

    with pytest.raises(CsvImportError) as excinfo:
        import_bars_csv(write_csv(tmp_path, lines), symbol=symbol, columns=columns)

    message = "\n".join(excinfo.value.errors)
    for fragment in expected:
        assert fragment in message
    assert snapshot(symbol) == before
    assert Instrument.objects.count() == 1  # the new symbol was not created


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_csv(
        tmp_path, [HEADER, "2018-01-02,10,11,9,10.5,100", "2018-01-03,x,11,9,10.5,100", "2018-01-03,1,1,1,1,-1"]
    )
    with pytest.raises(CsvImportError) as excinfo:
        import_bars_csv(path, symbol="TEST")
    assert excinfo.value.errors == [
        "line 3: column 'open': 'x' is not a finite number",
        "line 4: duplicate timestamp '2018-01-03' (same as line 3)",
        "line 4: volume must not be negative (got -1)",
    ]
    assert not Instrument.objects.exists()


def test_the_error_list_is_capped_and_says_how_many_more(tmp_path):
    rows = [f"2018-01-{day:02d},10,9,11,10,100" for day in range(1, 29)] * 4  # 112 lines, each high < low
    rows.sort()
    with pytest.raises(CsvImportError) as excinfo:
        import_bars_csv(write_csv(tmp_path, [HEADER, *rows]), symbol="TEST")
    errors = excinfo.value.errors
    assert len(errors) == MAX_ERRORS + 1
    # 112 high<low + 84 duplicates = 196 problems, 50 listed.
    assert errors[-1] == f"... and {196 - MAX_ERRORS} more errors (only the first {MAX_ERRORS} are listed)"


def test_an_error_on_the_last_line_leaves_nothing(tmp_path, existing):
    rows = [f"2018-02-{day:02d},10,11,9,10.5,100" for day in range(1, 28)] + ["2018-02-28,10,11,9,10.5,oops"]
    before = snapshot()
    with pytest.raises(CsvImportError, match="line 29: column 'volume'"):
        import_bars_csv(write_csv(tmp_path, [HEADER, *rows]), symbol="TEST")
    assert snapshot() == before


def test_a_database_failure_mid_import_rolls_back_every_batch(tmp_path, existing, monkeypatch):
    """The writes are one transaction: a failure on the second batch undoes the first."""
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    real_bulk_create = PriceBar.objects.bulk_create
    calls = []

    def failing_bulk_create(objs, **kwargs):
        calls.append(len(objs))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_bulk_create(objs, **kwargs)

    monkeypatch.setattr(PriceBar.objects, "bulk_create", failing_bulk_create)
    rows = [f"2018-02-{day:02d},10,11,9,10.5,100" for day in range(1, 5)]
    before = snapshot()
    with pytest.raises(RuntimeError):
        import_bars_csv(write_csv(tmp_path, [HEADER, *rows]), symbol="TEST")
    assert calls == [2, 2]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"symbol": "  "}, "symbol: required"),
        ({"symbol": "X" * 33}, "symbol: at most 32 characters"),
        ({"symbol": "NEW", "interval": "2d"}, "interval: '2d' is not one of 1m, 5m"),
        ({"symbol": "NEW", "bars_per_year": 0}, "bars_per_year: must be a positive number"),
        ({"symbol": "NEW", "bars_per_year": "many"}, "bars_per_year: must be a positive number"),
        ({"symbol": "TEST", "interval": "1h"}, "instrument TEST already exists with bar interval '1d', not '1h'"),
    ],
)
def test_bad_arguments_are_refused_and_write_nothing(tmp_path, existing, kwargs, expected):
    before = snapshot()
    with pytest.raises(CsvImportError, match=expected):
        import_bars_csv(write_csv(tmp_path, [HEADER, "2019-01-02,10,11,9,10.5,100"]), **kwargs)
    assert snapshot() == before
    assert Instrument.objects.count() == 1


def test_unreadable_file_is_an_import_error(tmp_path):
    with pytest.raises(CsvImportError, match=r"cannot read .*missing\.csv"):
        import_bars_csv(tmp_path / "missing.csv", symbol="TEST")
    (tmp_path / "latin1.csv").write_bytes((HEADER + "\n2018-01-02,10,11,9,10.5,100 \xe9\n").encode("latin-1"))
    with pytest.raises(CsvImportError, match="not UTF-8"):
        import_bars_csv(tmp_path / "latin1.csv", symbol="TEST")


# --- upsert: idempotent, append, update ---------------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(tmp_path, existing):
    result = import_bars_csv(write_csv(tmp_path, [HEADER, *GOOD_ROWS]), symbol="TEST")
    assert (result.created, result.updated, result.unchanged, result.total) == (0, 0, 3, 3)
    assert not result.changed
    assert result.instrument.data_version == 1
    assert snapshot() == (3, 1)


def test_newer_bars_are_appended(tmp_path, existing):
    rows = [*GOOD_ROWS, "2018-01-05,12,13,11.5,12.5,400", "2018-01-08,12.5,13,12,12.8,500"]
    result = import_bars_csv(write_csv(tmp_path, [HEADER, *rows]), symbol="TEST")
    assert (result.created, result.updated, result.unchanged) == (2, 0, 3)
    assert result.instrument.data_version == 2
    assert existing.bars.count() == 5
    assert existing.bars.order_by("timestamp").last().timestamp == utc(2018, 1, 8)


def test_a_file_of_only_the_new_bars_appends_and_keeps_the_old(tmp_path, existing):
    result = import_bars_csv(write_csv(tmp_path, [HEADER, "2018-01-05,12,13,11.5,12.5,400"]), symbol="TEST")
    assert (result.created, result.unchanged) == (1, 0)
    assert existing.bars.count() == 4


def test_a_changed_bar_is_updated(tmp_path, existing):
    rows = [GOOD_ROWS[0], "2018-01-03,10.5,12,10,11.75,250", GOOD_ROWS[2]]
    result = import_bars_csv(write_csv(tmp_path, [HEADER, *rows]), symbol="TEST")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert result.instrument.data_version == 2
    bar = existing.bars.get(timestamp=utc(2018, 1, 3))
    assert (bar.close, bar.volume) == (11.75, 250)
    assert existing.bars.count() == 3


def test_interval_none_keeps_the_existing_interval_and_name_and_bars_per_year_are_updated(tmp_path, existing):
    result = import_bars_csv(
        write_csv(tmp_path, [HEADER, *GOOD_ROWS]), symbol="TEST", name="Renamed", bars_per_year=260
    )
    instrument = Instrument.objects.get(pk=existing.pk)
    assert (instrument.name, instrument.bar_interval, instrument.bars_per_year) == ("Renamed", "1d", 260)
    assert not result.changed  # bars unchanged: cached arrays stay valid
    assert instrument.data_version == 1


# --- import_prices command ------------------------------------------------------------------------------


def run(command, *args):
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_import_prices_prints_a_summary_and_is_idempotent(tmp_path):
    path = write_csv(tmp_path, [HEADER, *GOOD_ROWS])
    out = run("import_prices", str(path), "--symbol", "TEST", "--name", "Test index")
    assert "TEST: 3 bars read: 3 created, 0 updated, 0 unchanged (data version 1)." in out
    assert Instrument.objects.get(symbol="TEST").name == "Test index"

    out = run("import_prices", str(path), "--symbol", "TEST")
    assert "TEST: 3 bars read: 0 created, 0 updated, 3 unchanged; nothing changed." in out
    assert snapshot() == (3, 1)


def test_import_prices_prints_progress_for_large_files():
    spx = next(d for d in SAMPLE_DATASETS if d.symbol == "SPX")
    out = run("import_prices", str(spx.path), "--symbol", "SPX")
    progress = [line for line in out.splitlines() if line.strip().endswith("bars)")]
    assert len(progress) == 10
    assert progress[-1].strip() == "writing 100% (5031/5031 bars)"
    reading = [line.strip() for line in out.splitlines() if line.strip().endswith("rows)")]
    assert reading[0] == "reading 19% (1000/5031 rows)" and reading[-1] == "reading 100% (5031/5031 rows)"
    assert "SPX: 5031 bars read: 5031 created" in out


def test_import_prices_column_and_interval_options(tmp_path):
    path = write_csv(tmp_path, ["Time,O,H,L,C", "2018-01-02 10:00,10,11,9,10.5", "2018-01-02 11:00,10.5,12,10,11"])
    run(
        "import_prices",
        str(path),
        "--symbol=FX",
        "--interval=1h",
        "--bars-per-year=6000",
        "--timestamp-column=Time",
        "--open-column=O",
        "--high-column=H",
        "--low-column=L",
        "--close-column=C",
    )
    instrument = Instrument.objects.get(symbol="FX")
    assert (instrument.bar_interval, instrument.bars_per_year, instrument.bars.count()) == ("1h", 6000, 2)


def test_import_prices_refuses_a_bad_file_with_every_error_and_writes_nothing(tmp_path, existing):
    path = write_csv(tmp_path, [HEADER, "2019-01-02,10,9,11,10,100", "2019-01-03,10,11,9,10.5,-1"])
    before = snapshot()
    with pytest.raises(CommandError) as excinfo:
        run("import_prices", str(path), "--symbol", "TEST")
    message = str(excinfo.value)
    assert "import refused, nothing was written" in message
    assert "line 2: high (9) is below low (11)" in message
    assert "line 3: volume must not be negative (got -1)" in message
    assert snapshot() == before


def test_import_prices_missing_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run("import_prices", str(tmp_path / "nope.csv"), "--symbol", "TEST")


# --- bundled sample data -------------------------------------------------------------------------------------

EXPECTED_SAMPLES = {
    # symbol: (bars, name, interval, bars_per_year, first timestamp, last timestamp)
    "SPX": (5031, "S&P 500 index", "1d", 252, utc(1999, 1, 4), utc(2018, 12, 31)),
    "IXIC": (5031, "NASDAQ Composite", "1d", 252, utc(1999, 1, 4), utc(2018, 12, 31)),
    "GOOG": (2148, "Alphabet (GOOG)", "1d", 252, utc(2004, 8, 19), utc(2013, 3, 1)),
    "EURUSD": (5000, "Euro / US dollar", "1h", 6240, utc(2017, 4, 19, 9), utc(2018, 2, 7, 15)),
    "BTCUSD": (156, "Bitcoin / US dollar", "1mo", 12, utc(2012, 1, 31), utc(2024, 12, 31)),
}


def test_load_sample_data_loads_the_five_datasets_and_is_idempotent():
    out = run("load_sample_data")
    assert len(out.splitlines()) == 5  # one line per dataset
    for symbol, (count, name, interval, bars_per_year, first, last) in EXPECTED_SAMPLES.items():
        instrument = Instrument.objects.get(symbol=symbol)
        assert (instrument.name, instrument.bar_interval, instrument.bars_per_year) == (name, interval, bars_per_year)
        assert instrument.bars.count() == count
        assert instrument.data_version == 1
        timestamps = instrument.bars.order_by("timestamp").values_list("timestamp", flat=True)
        assert (timestamps.first(), timestamps.last()) == (first, last)
        assert f"{count} bars created" in next(line for line in out.splitlines() if line.startswith(symbol))

    again = run("load_sample_data")
    assert "Sample data already loaded; nothing changed." in again
    for symbol, (count, *_rest) in EXPECTED_SAMPLES.items():
        assert f"{count} bars already loaded, unchanged" in next(
            line for line in again.splitlines() if line.startswith(symbol)
        )
    assert {i.symbol: i.data_version for i in Instrument.objects.all()} == dict.fromkeys(EXPECTED_SAMPLES, 1)
    assert PriceBar.objects.count() == sum(v[0] for v in EXPECTED_SAMPLES.values())


def test_load_sample_data_only_and_unknown_symbol():
    out = run("load_sample_data", "--only", "btcusd", "--only", "GOOG")
    assert [line.split()[0] for line in out.splitlines()] == ["GOOG", "BTCUSD"]
    assert set(Instrument.objects.values_list("symbol", flat=True)) == {"GOOG", "BTCUSD"}
    with pytest.raises(CommandError, match="no bundled dataset 'XAU'; known: SPX, IXIC"):
        run("load_sample_data", "--only", "XAU")



# A Yahoo Finance download: the README's import example (issue 17). Close is the traded close,
# within High/Low; Adj Close is back-adjusted for dividends and splits and lies below Low here.
YAHOO = [
    "Date,Open,High,Low,Close,Adj Close,Volume",
    "2018-01-02,170.16,172.30,169.26,172.26,40.89,25555900",
    "2018-01-03,172.53,174.55,171.96,172.23,40.88,29517900",
    "2018-01-04,172.54,173.47,172.08,173.03,41.07,22434600",
]


def test_a_yahoo_file_imports_with_no_flags_as_the_readme_shows(tmp_path):
    path = write_csv(tmp_path, YAHOO, "AAPL.csv")
    out = run("import_prices", str(path), "--symbol", "AAPL", "--interval", "1d")
    assert "AAPL: 3 bars read: 3 created" in out
    closes = list(Instrument.objects.get(symbol="AAPL").bars.order_by("timestamp").values_list("close", flat=True))
    assert closes == pytest.approx([172.26, 172.23, 173.03])  # Close, not Adj Close


def test_the_adjusted_close_as_close_is_refused_naming_the_rule(tmp_path):
    # Why the README no longer shows --close-column "Adj Close": it cannot pass the OHLC checks.
    path = write_csv(tmp_path, YAHOO, "AAPL.csv")
    with pytest.raises(CommandError) as excinfo:
        run("import_prices", str(path), "--symbol", "AAPL", "--close-column", "Adj Close")
    assert "line 2: close (40.89) is outside [low, high]" in str(excinfo.value)
    assert not Instrument.objects.filter(symbol="AAPL").exists()
