"""The data people have: close-only series, missing values, adjusted prices, delimiters, decimal
commas, zones, epochs and non-positive prices (agents.market.csvparse / csvformat)."""

import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.market.cache import load_bars
from agents.market.csvformat import parse_timestamp
from agents.market.importer import CsvImportError, ImportOptions, import_bars_csv, parse_bars
from agents.market.models import Instrument, PriceBar
from agents.models import IterationTrigger
from agents.services import learning
from core.errors import ValidationFailed
from graduation import services as graduation
from graduation.trading.runner import paper_tick
from tests.agents.helpers import fred_series
from tests.factories import UserFactory, make_agent
from tests.graduation.helpers import QUICK, add_iteration

pytestmark = pytest.mark.django_db


def write(tmp_path, text, name="bars.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def stored(symbol):
    return list(PriceBar.objects.filter(instrument__symbol=symbol).order_by("timestamp")
                .values_list("timestamp", "open", "high", "low", "close", "volume"))


# --- close-only and missing values -----------------------------------------------------------------
def test_a_fred_file_is_refused_without_close_only_and_says_how(tmp_path):
    path = write(tmp_path, "\n".join(fred_series(20)) + "\n")
    with pytest.raises(CsvImportError) as excinfo:
        import_bars_csv(path, symbol="WTI")
    assert excinfo.value.errors == [
        "line 1: the file has one value column ('DCOILWTICO') besides the timestamp: if it is a close-only series "
        "(e.g. from FRED), import it with --close-only"
    ]
    assert not Instrument.objects.exists()


def test_close_only_with_missing_fail_reports_the_count_and_first_lines(tmp_path):
    path = write(tmp_path, "\n".join(fred_series(60)) + "\n")
    with pytest.raises(CsvImportError) as excinfo:
        import_bars_csv(path, symbol="WTI", options=ImportOptions(close_only=True))
    errors = excinfo.value.errors
    assert errors[0] == "line 7: column 'DCOILWTICO (close)': missing value"
    assert errors[-1] == ("7 rows have missing values (lines 7, 16, 25, 34, 43, 52, 61); to import anyway, drop "
                          "them with --missing skip or carry the previous close forward with --missing ffill")
    assert not Instrument.objects.exists()


def test_close_only_skip_imports_flat_bars_and_marks_the_instrument(tmp_path):
    path = write(tmp_path, "\n".join(fred_series(30)) + "\n")
    result = import_bars_csv(path, symbol="WTI", options=ImportOptions(close_only=True, missing="skip"))
    assert (result.created, result.total) == (27, 27)
    assert "3 rows with missing values skipped (lines 7, 16, 25)" in result.notes
    assert result.instrument.has_intrabar_range is False
    for _ts, o, h, lo, c, v in stored("WTI"):
        assert o == h == lo == c and v == 0


def test_ffill_carries_the_previous_close_and_drops_leading_gaps(tmp_path):
    text = "Date,Value\n2020-01-01,.\n2020-01-02,10\n2020-01-03,NA\n2020-01-04,\n2020-01-05,null\n2020-01-06,12.5\n"
    result = import_bars_csv(write(tmp_path, text), symbol="X", options=ImportOptions(close_only=True, missing="ffill"))
    assert [row[4] for row in stored("X")] == [10, 10, 10, 10, 12.5]
    assert "1 rows with missing values skipped (lines 2)" in result.notes
    assert "3 rows with missing values filled with the previous close (lines 4, 5, 6)" in result.notes


def test_ffill_on_ohlc_fills_fields_and_widens_the_range(tmp_path):
    text = "timestamp,open,high,low,close\n2020-01-01,10,11,9,10.5\n2020-01-02,NaN,11,10.8,11\n"
    import_bars_csv(write(tmp_path, text), symbol="X", options=ImportOptions(missing="ffill"))
    assert stored("X")[1][1:5] == (10.5, 11, 10.5, 11)


def test_close_only_and_ohlc_bars_never_mix_in_one_instrument(tmp_path):
    import_bars_csv(write(tmp_path, "Date,Value\n2020-01-01,10\n"), symbol="X", options=ImportOptions(close_only=True))
    with pytest.raises(CsvImportError, match="instrument X holds close-only bars"):
        import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n2020-01-02,10,11,9,10\n"), symbol="X")
    import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n2020-01-02,10,11,9,10\n"), symbol="Y")
    with pytest.raises(CsvImportError, match="instrument Y holds OHLC bars"):
        import_bars_csv(write(tmp_path, "Date,Value\n2020-01-03,10\n"), symbol="Y",
                        options=ImportOptions(close_only=True))
    assert PriceBar.objects.count() == 2


def test_close_only_needs_one_value_column_or_a_mapping(tmp_path):
    path = write(tmp_path, "Date,A,B\n2020-01-01,1,2\n")
    with pytest.raises(CsvImportError, match=r"close only: the file has 2 value columns \('A', 'B'\); name the one"):
        import_bars_csv(path, symbol="X", options=ImportOptions(close_only=True))
    import_bars_csv(path, symbol="X", options=ImportOptions(close_only=True, columns={"close": "B"}))
    assert stored("X")[0][4] == 2


# --- non-positive prices ---------------------------------------------------------------------------
def test_non_positive_prices_are_refused_naming_the_lines_with_advice(tmp_path):
    text = "DATE,DCOILWTICO\n2020-04-17,18.31\n2020-04-20,-37.63\n2020-04-21,10.01\n"
    with pytest.raises(CsvImportError) as excinfo:
        import_bars_csv(write(tmp_path, text), symbol="WTI", options=ImportOptions(close_only=True))
    assert excinfo.value.errors[0] == "line 3: close must be positive (got -37.63)"
    assert "cannot trade through such a price" in excinfo.value.errors[1]
    assert "--non-positive skip" in excinfo.value.errors[1]
    result = import_bars_csv(write(tmp_path, text), symbol="WTI",
                             options=ImportOptions(close_only=True, non_positive="skip"))
    assert result.created == 2 and "1 rows with a non-positive price skipped (lines 3)" in result.notes


# --- headers, adjusted, formats --------------------------------------------------------------------
def test_adjusted_scales_ohlc_by_adj_close_over_close(tmp_path):
    text = "Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,10,12,8,10,5,100\n"
    import_bars_csv(write(tmp_path, text), symbol="A", options=ImportOptions(adjusted=True))
    assert stored("A")[0][1:] == (5, 6, 4, 5, 100)
    result = import_bars_csv(write(tmp_path, text), symbol="B")
    assert stored("B")[0][1:5] == (10, 12, 8, 10)
    assert "column 'Adj Close' ignored (pass --adjusted to use it)" in result.notes
    with pytest.raises(CsvImportError, match="--adjusted needs an 'Adj Close' column"):
        import_bars_csv(write(tmp_path, "Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n"), symbol="C",
                        options=ImportOptions(adjusted=True))


@pytest.mark.parametrize("header", ["Date", "DATETIME", "time", "Timestamp"])
def test_timestamp_header_names_are_case_insensitive(tmp_path, header):
    import_bars_csv(write(tmp_path, f"{header},Open,High,Low,Close\n2020-01-02,1,2,1,2\n"), symbol="H")
    assert len(stored("H")) == 1


def test_semicolons_decimal_commas_bom_and_crlf(tmp_path):
    text = "\ufeffDatum;Open;High;Low;Close;Volume\r\n2020-01-02;1.234,5;1.240,0;1.230,25;1.235,75;10\r\n"
    text = text.replace("Datum", "Date")
    result = import_bars_csv(write(tmp_path, text), symbol="EU")
    assert stored("EU")[0][1:] == (1234.5, 1240.0, 1230.25, 1235.75, 10)
    assert "delimiter: semicolon; decimal comma" in result.notes


def test_tab_delimited(tmp_path):
    import_bars_csv(write(tmp_path, "date\topen\thigh\tlow\tclose\n2020-01-02\t1\t2\t0.5\t1.5\n"), symbol="T")
    assert stored("T")[0][1:5] == (1, 2, 0.5, 1.5)


def test_epoch_seconds_and_milliseconds(tmp_path):
    import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n1577923200,1,1,1,1\n1578009600,1,1,1,1\n"),
                    symbol="S")
    import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n1578096000000,1,1,1,1\n"), symbol="S")
    assert [row[0] for row in stored("S")] == [datetime(2020, 1, d, tzinfo=UTC) for d in (2, 3, 4)]


def test_a_file_mixing_epoch_units_or_naive_and_zoned_is_refused(tmp_path):
    with pytest.raises(CsvImportError, match="line 3: timestamp '1578009600000' is written as epoch milliseconds but "
                                             "line 2's is as epoch seconds"):
        import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n1577923200,1,1,1,1\n1578009600000,1,1,1,1\n"),
                        symbol="S")
    with pytest.raises(CsvImportError, match=r"line 3: .* is written without a UTC offset but line 2's is with"):
        import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n2020-01-01T10:00+01:00,1,1,1,1\n"
                                        "2020-01-02 10:00,1,1,1,1\n"), symbol="S")
    assert not PriceBar.objects.exists()


def test_naive_timestamps_in_a_named_zone(tmp_path):
    import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n2020-07-01 09:30,1,1,1,1\n"), symbol="NY",
                    interval="1h", options=ImportOptions(timezone="America/New_York"))
    assert stored("NY")[0][0] == datetime(2020, 7, 1, 13, 30, tzinfo=UTC)
    with pytest.raises(CsvImportError, match="timezone: 'Mars/Olympus' is not a known IANA time zone"):
        import_bars_csv(write(tmp_path, "timestamp,open,high,low,close\n2020-07-01,1,1,1,1\n"), symbol="NY",
                        options=ImportOptions(timezone="Mars/Olympus"))


def test_timestamp_forms():
    assert parse_timestamp("20200102").value == datetime(2020, 1, 2, tzinfo=UTC)
    assert parse_timestamp("2020-01-02 12:00 Europe/Paris").value == datetime(2020, 1, 2, 11, tzinfo=UTC)
    assert parse_timestamp("2020-01-02 12:00 Nowhere/Land") is None
    assert parse_timestamp("12345") is None


def test_bad_policies_are_named():
    report = parse_bars(io.StringIO("Date,Value\n2020-01-01,1\n"), ImportOptions(missing="drop", non_positive="x"))
    assert report.error_list()[:2] == ["missing: 'drop' is not one of fail, skip, ffill",
                                       "non_positive: 'x' is not one of fail, skip"]


# --- strategies on close-only instruments ----------------------------------------------------------
def test_templates_reading_highs_and_lows_are_refused_and_stops_warned(tmp_path):
    import_bars_csv(write(tmp_path, "\n".join(fred_series(200)) + "\n"), symbol="WTI",
                    options=ImportOptions(close_only=True, missing="skip"))
    with pytest.raises(ValidationFailed) as excinfo:
        make_agent(instrument=Instrument.objects.get(symbol="WTI"), template="donchian_breakout")
    assert "reads highs and lows, and instrument WTI is close-only" in str(excinfo.value.errors["strategy_template"])
    agent = make_agent(instrument=Instrument.objects.get(symbol="WTI"), params={"stop_loss": 0.05})
    created = agent.activity.get(event="agent_created")
    assert "stop-loss is judged on closes" in created.message and created.details["warnings"]


# --- the command, and the "done when" -------------------------------------------------------
def test_import_prices_options_and_the_close_only_agent_learns_and_paper_trades(tmp_path):
    lines = fred_series(700)
    old = write(tmp_path, "\n".join(lines[:601]) + "\n", "old.csv")
    new = write(tmp_path, "\n".join([lines[0], *lines[601:]]) + "\n", "new.csv")
    with pytest.raises(CommandError, match="--close-only"):
        call_command("import_prices", str(old), "--symbol", "WTI", stdout=io.StringIO())
    out = io.StringIO()
    call_command("import_prices", str(old), "--symbol", "WTI", "--close-only", "--missing", "skip", stdout=out)
    assert "67 rows with missing values skipped" in out.getvalue()
    assert "WTI: 533 bars read: 533 created" in out.getvalue()

    user = UserFactory()
    agent = make_agent(owner=user, instrument=Instrument.objects.get(symbol="WTI"), params={"fast": 3, "slow": 8})
    iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert iteration.status == "succeeded", iteration.error
    agent.graduation_criteria = {**QUICK, "max_drawdown": 1.0}
    agent.save(update_fields=["graduation_criteria"])
    for _ in range(3):
        add_iteration(agent)
    graduation.agent_graduate(agent, actor=user, reason="close-only smoke")

    call_command("import_prices", str(new), "--symbol", "WTI", "--close-only", "--missing", "skip",
                 stdout=io.StringIO())
    summary = paper_tick()
    assert summary["errors"] == 0 and summary["bars"] == len(load_bars(agent.instrument_id)) - 533
    assert summary["bars"] > 80
