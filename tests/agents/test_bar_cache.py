"""Bars as cached numpy arrays (agents.market.cache)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from agents.market import cache
from agents.market.cache import bars_version, clear_bar_cache, load_bars, mark_bars_changed, read_bars
from agents.market.importer import import_bars_csv
from agents.market.models import Instrument, PriceBar

pytestmark = pytest.mark.django_db

HEADER = "timestamp,open,high,low,close,volume"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # SQLite reuses ids of rolled-back rows, so entries must not leak from one test to the next.
    clear_bar_cache()
    yield
    clear_bar_cache()


def make_instrument(symbol="TEST", n=5, start=datetime(2020, 1, 1, tzinfo=UTC), step=timedelta(days=1)):
    instrument = Instrument.objects.create(symbol=symbol)
    add_bars(instrument, range(n), start, step)
    return instrument


def add_bars(instrument, indices, start=datetime(2020, 1, 1, tzinfo=UTC), step=timedelta(days=1)):
    PriceBar.objects.bulk_create(
        PriceBar(
            instrument=instrument,
            timestamp=start + i * step,
            open=100.0 + i,
            high=102.0 + i,
            low=99.0 + i,
            close=101.0 + i,
            volume=1000.0 * i,
        )
        for i in indices
    )


def test_load_bars_returns_the_columns_oldest_first():
    instrument = Instrument.objects.create(symbol="TEST")
    add_bars(instrument, [3, 0, 2, 1])  # stored out of order

    bars = load_bars(instrument)

    assert len(bars) == 4
    assert bars.timestamps.dtype == np.dtype("datetime64[ns]")
    assert list(bars.timestamps) == [np.datetime64(f"2020-01-0{d}T00:00", "ns") for d in (1, 2, 3, 4)]
    for column in (bars.open, bars.high, bars.low, bars.close, bars.volume):
        assert column.dtype == np.float64
    np.testing.assert_array_equal(bars.open, [100, 101, 102, 103])
    np.testing.assert_array_equal(bars.high, [102, 103, 104, 105])
    np.testing.assert_array_equal(bars.low, [99, 100, 101, 102])
    np.testing.assert_array_equal(bars.close, [101, 102, 103, 104])
    np.testing.assert_array_equal(bars.volume, [0, 1000, 2000, 3000])


def test_timestamps_are_utc_datetime64(tmp_path):
    path = tmp_path / "tz.csv"
    path.write_text(f"{HEADER}\n2021-06-01T09:30:00+02:00,1,2,1,2,0\n2021-06-01T08:30:00Z,1,2,1,2,0\n")
    instrument = import_bars_csv(path, symbol="TZ", interval="1h").instrument
    assert list(load_bars(instrument.pk).timestamps) == [
        np.datetime64("2021-06-01T07:30", "ns"),
        np.datetime64("2021-06-01T08:30", "ns"),
    ]


def test_intraday_timestamps_keep_their_time():
    instrument = make_instrument(n=3, start=datetime(2020, 1, 1, 9, 15, 30, tzinfo=UTC), step=timedelta(hours=1))
    assert list(load_bars(instrument).timestamps) == [
        np.datetime64("2020-01-01T09:15:30", "ns"),
        np.datetime64("2020-01-01T10:15:30", "ns"),
        np.datetime64("2020-01-01T11:15:30", "ns"),
    ]


def test_an_instrument_without_bars_gives_empty_arrays():
    bars = load_bars(Instrument.objects.create(symbol="EMPTY"))
    assert len(bars) == 0
    assert bars.timestamps.dtype == np.dtype("datetime64[ns]")
    assert bars.close.dtype == np.float64


def test_unknown_instrument_raises_does_not_exist():
    with pytest.raises(Instrument.DoesNotExist):
        load_bars(987654)


def test_second_call_is_served_from_the_cache_with_only_the_version_lookup(django_assert_num_queries):
    instrument = make_instrument()
    with django_assert_num_queries(2):  # version lookup + bars
        first = load_bars(instrument.pk)
    with django_assert_num_queries(1):  # version lookup only
        second = load_bars(instrument)
    assert second is first


def test_cached_arrays_are_read_only():
    bars = load_bars(make_instrument())
    with pytest.raises(ValueError, match="read-only"):
        bars.close[0] = 0.0
    # read_bars bypasses the cache and gives writable arrays.
    fresh = read_bars(Instrument.objects.get(symbol="TEST"))
    fresh.close[0] = 0.0
    assert bars.close[0] == 100.0 + 1


def test_an_import_that_adds_bars_invalidates_the_cache(tmp_path, django_assert_num_queries):
    path = tmp_path / "a.csv"
    path.write_text(f"{HEADER}\n2020-01-01,1,2,1,2,0\n2020-01-02,2,3,2,3,0\n")
    instrument = import_bars_csv(path, symbol="TEST").instrument
    assert len(load_bars(instrument)) == 2

    path.write_text(f"{HEADER}\n2020-01-01,1,2,1,2,0\n2020-01-02,2,3,2,3,0\n2020-01-03,3,4,3,4,0\n")
    import_bars_csv(path, symbol="TEST")
    with django_assert_num_queries(2):  # new version: the bars are read again
        bars = load_bars(instrument)
    assert len(bars) == 3
    np.testing.assert_array_equal(bars.close, [2, 3, 4])

    import_bars_csv(path, symbol="TEST")  # unchanged: the cached arrays stay valid
    with django_assert_num_queries(1):
        assert load_bars(instrument) is bars


def test_an_updated_bar_invalidates_the_cache(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(f"{HEADER}\n2020-01-01,1,2,1,2,0\n")
    instrument = import_bars_csv(path, symbol="TEST").instrument
    assert load_bars(instrument).close.tolist() == [2.0]
    path.write_text(f"{HEADER}\n2020-01-01,1,2,1,1.5,0\n")
    import_bars_csv(path, symbol="TEST")
    assert load_bars(instrument).close.tolist() == [1.5]


def test_direct_writes_are_seen_after_mark_bars_changed():
    instrument = make_instrument(n=3)
    assert len(load_bars(instrument)) == 3
    add_bars(instrument, [3, 4])
    assert len(load_bars(instrument)) == 3  # not bumped: still the cached arrays
    mark_bars_changed(instrument)
    assert bars_version(instrument) == 1
    assert len(load_bars(instrument)) == 5


def test_only_the_latest_version_of_an_instrument_is_kept():
    instrument = make_instrument(n=2)
    load_bars(instrument)
    mark_bars_changed(instrument.pk)
    load_bars(instrument)
    assert [key[:2] for key in cache._cache] == [(instrument.pk, 1)]


def test_least_recently_used_instrument_is_evicted(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(cache, "BAR_CACHE_SIZE", 2)
    a, b, c = (make_instrument(symbol) for symbol in ("A", "B", "C"))
    load_bars(a)
    load_bars(b)
    load_bars(a)  # a is now the most recently used
    load_bars(c)  # evicts b
    with django_assert_num_queries(1):
        load_bars(a)
    with django_assert_num_queries(2):
        load_bars(b)


def test_clear_bar_cache_forgets_everything(django_assert_num_queries):
    instrument = make_instrument()
    load_bars(instrument)
    clear_bar_cache()
    with django_assert_num_queries(2):
        load_bars(instrument)
