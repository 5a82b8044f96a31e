"""The ccxt bar feed against a local fake exchange (never the network): incremental fetches, a gap,
a repeated bar, a malformed candle, a 429, a timeout; its beat row; paper trading on fed bars."""

import datetime as dt
import json

import numpy as np
import pytest
from django_celery_beat.models import PeriodicTask

from agents.market.feeds import ccxt_feed
from agents.market.feeds.ccxt_feed import CcxtFeed
from agents.market.feeds.service import feed_configure, feed_remove, feed_set_enabled, poll_feed
from agents.market.models import BarFeedConfig, PriceBar
from agents.tasks import poll_bar_feed_task
from core.errors import ValidationFailed
from graduation import services as graduation
from graduation.models import PaperAccount
from graduation.trading.runner import paper_tick
from tests.factories import InstrumentFactory
from tests.fake_exchange import FakeExchange, kline
from tests.graduation.helpers import eligible_agent

pytestmark = pytest.mark.django_db

H = 3_600_000
T0 = 1_700_000_000_000 // H * H  # 2023-11-14 22:00 UTC


@pytest.fixture
def exchange():
    server = FakeExchange().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fast_feed(settings):
    settings.LAB_FEED_TIMEOUT_SECONDS = 1
    settings.LAB_FEED_BACKOFF_SECONDS = 0.5
    settings.LAB_FEED_MAX_BACKOFF_SECONDS = 4
    settings.LAB_FEED_MAX_RETRIES = 2


def walk(n, start_ms=T0, price=100.0, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        close = price * float(np.exp(rng.normal(0, 0.01)))
        high, low = max(price, close) * 1.002, min(price, close) * 0.998
        out.append(kline(start_ms + i * H, round(price, 4), round(high, 4), round(low, 4), round(close, 4), 3))
        price = close
    return out


def stored_hours(instrument):
    return [int(ts.timestamp() * 1000) for ts in PriceBar.objects.filter(instrument=instrument)
            .order_by("timestamp").values_list("timestamp", flat=True)]


@pytest.fixture
def btc(exchange):
    instrument = InstrumentFactory(symbol="BTCUSDT", bar_interval="1h", bars_per_year=24 * 365)
    feed_configure(instrument, exchange="binance", market_symbol="BTC/USDT", api_base_url=exchange.url,
                   ccxt_options={"fetchMarkets": {"types": ["spot"]}},
                   start_at=dt.datetime.fromtimestamp(T0 / 1000, tz=dt.UTC))
    return instrument


def poll(instrument, *, now_ms=T0 + 1000 * H, sleeps=None):
    config = BarFeedConfig.objects.get(instrument=instrument)
    feed = CcxtFeed(config, sleep=(sleeps.append if sleeps is not None else lambda s: None), now_ms=lambda: now_ms)
    return poll_feed(instrument.pk, feed=feed)


def test_first_poll_from_start_then_incremental_from_the_last_bar(btc, exchange):
    exchange.candles = walk(10)
    first = poll(btc)
    assert (first["created"], first["error"]) == (10, "")
    assert stored_hours(btc) == [T0 + i * H for i in range(10)]
    exchange.candles = walk(14)
    second = poll(btc)
    assert second["created"] == 4
    klines = [q for path, q in exchange.requests if path == "/api/v3/klines"]
    assert klines[0]["startTime"] == str(T0) and klines[-1]["startTime"] == str(T0 + 10 * H)
    assert klines[-1]["symbol"] == "BTCUSDT" and klines[-1]["interval"] == "1h"
    assert poll(btc)["created"] == 0
    config = BarFeedConfig.objects.get(instrument=btc)
    assert config.bars_imported == 14 and config.last_error == "" and config.last_success_at is not None


def test_pages_are_followed_until_the_newest_bar(btc, exchange, settings):
    settings.LAB_FEED_PAGE_LIMIT = 4
    exchange.candles = walk(10)
    assert poll(btc)["created"] == 10
    assert len([1 for path, _ in exchange.requests if path == "/api/v3/klines"]) == 3


def test_the_candle_still_forming_is_left_for_later(btc, exchange):
    exchange.candles = walk(5)
    result = poll(btc, now_ms=T0 + 4 * H + 10)  # the 5th candle opened 10 ms ago
    assert result["created"] == 4
    assert any("still forming" in note for note in result["notes"])


def test_a_gap_is_reported_and_the_bars_after_it_are_stored(btc, exchange):
    candles = walk(8)
    exchange.candles = candles[:3] + candles[5:]
    result = poll(btc)
    assert result["created"] == 6
    assert any(note.startswith("gap: 2 candle(s) missing before") for note in result["notes"])


def test_a_repeated_bar_is_kept_once_with_its_last_values(btc, exchange):
    candles = walk(4)
    corrected = list(candles[2])
    corrected[4] = str(float(corrected[4]) * 1.0001)
    corrected[2] = str(max(float(corrected[2]), float(corrected[4])))
    exchange.candles = [*candles, corrected]
    result = poll(btc)
    assert result["created"] == 4 and any("repeated" in n for n in result["notes"])
    assert PriceBar.objects.get(instrument=btc, timestamp=dt.datetime.fromtimestamp((T0 + 2 * H) / 1000, tz=dt.UTC)
                                ).close == float(corrected[4])


def test_a_malformed_candle_stops_the_poll_after_storing_the_ones_before_it(btc, exchange):
    candles = walk(6)
    bad = list(candles[3])
    bad[2] = "abc"  # ccxt reads it as None: a missing high
    exchange.candles = [*candles[:3], bad, *candles[4:]]
    result = poll(btc)
    assert result["created"] == 3
    assert "refused (line 5: column 'high': missing value)" in result["error"]
    assert str(T0 + 3 * H) in result["error"]
    assert BarFeedConfig.objects.get(instrument=btc).last_error == result["error"]
    inverted = list(candles[3])
    inverted[2], inverted[3] = inverted[3], inverted[2]  # high below low
    exchange.candles = [*candles[:3], inverted, *candles[4:]]
    assert "high (" in poll(btc)["error"]
    exchange.candles = candles  # the exchange fixed it: the next poll resumes from there
    fixed = poll(btc)
    assert fixed["created"] == 3 and fixed["error"] == ""
    assert BarFeedConfig.objects.get(instrument=btc).last_error == ""


def test_a_429_is_retried_after_its_retry_after(btc, exchange):
    exchange.candles = walk(3)
    exchange.faults = ["429"]
    sleeps = []
    result = poll(btc, sleeps=sleeps)
    assert result["created"] == 3 and result["error"] == ""
    assert sleeps == [2.0]  # Retry-After: 2, above the 0.5 s backoff and below the 4 s cap
    assert any("DDoSProtection on attempt 1" in n for n in result["notes"])


def test_a_timeout_is_retried_with_backoff(btc, exchange):
    exchange.candles = walk(3)
    exchange.faults = ["timeout"]
    sleeps = []
    result = poll(btc, sleeps=sleeps)
    assert result["created"] == 3 and sleeps == [0.5]
    assert any("RequestTimeout on attempt 1" in n for n in result["notes"])


def test_retries_are_bounded_and_the_failure_recorded(btc, exchange):
    exchange.candles = walk(3)
    exchange.faults = ["502", "502", "502", "502"]
    sleeps = []
    result = poll(btc, sleeps=sleeps)
    assert sleeps == [0.5, 1.0] and result["created"] == 0
    assert result["error"].startswith("binance: ExchangeNotAvailable")
    assert not PriceBar.objects.exists()
    assert BarFeedConfig.objects.get(instrument=btc).last_error == result["error"]


def test_backoff_is_capped(settings):
    settings.LAB_FEED_BACKOFF_SECONDS = 3
    feed = CcxtFeed.__new__(CcxtFeed)
    feed.exchange = type("E", (), {"last_response_headers": {}, "rateLimit": 50})()
    assert [feed._retry_delay(n, Exception()) for n in range(4)] == [3, 4, 4, 4]


def test_configuration_is_validated_and_the_beat_row_follows_it(exchange):
    daily = InstrumentFactory(symbol="ETH", bar_interval="1d")
    with pytest.raises(ValidationFailed) as excinfo:
        feed_configure(daily, exchange="nasdaq", market_symbol="", timeframe="1h", poll_seconds=1)
    assert set(excinfo.value.errors) == {"market_symbol", "timeframe", "poll_seconds"}
    assert "must match the instrument's bar interval '1d': use '1d'" in excinfo.value.errors["timeframe"]
    with pytest.raises(ValidationFailed, match="'nasdaq' is not a ccxt exchange id"):
        feed_configure(daily, exchange="nasdaq", market_symbol="ETH/USDT")
    assert not BarFeedConfig.objects.exists() and not PeriodicTask.objects.filter(name__endswith=":feed").exists()

    config = feed_configure(daily, exchange="Kraken", market_symbol="ETH/USD", poll_seconds=300)
    row = PeriodicTask.objects.get(name=f"instrument:{daily.pk}:feed")
    assert (row.task, json.loads(row.args), row.interval.every, row.enabled) == (
        "agents.tasks.poll_bar_feed_task", [daily.pk], 300, True)
    assert config.exchange == "kraken" and config.timeframe == "1d"
    feed_set_enabled(daily, False)
    assert not PeriodicTask.objects.get(name=f"instrument:{daily.pk}:feed").enabled
    assert poll_feed(daily.pk) == {"skipped": "no enabled feed"}
    feed_remove(daily)
    assert not PeriodicTask.objects.filter(name=f"instrument:{daily.pk}:feed").exists()


def test_the_beat_task_polls_and_paper_trading_consumes_the_new_bars(btc, exchange, monkeypatch):
    candles = walk(400, start_ms=T0, seed=5)
    exchange.candles = candles[:300]
    poll(btc)
    agent = eligible_agent(instrument=btc, params={"fast": 3, "slow": 8})
    agent.graduation_criteria = {**agent.graduation_criteria, "max_drawdown": 1.0}
    agent.save(update_fields=["graduation_criteria"])
    graduation.agent_graduate(agent, actor=agent.owner, reason="feed test")
    exchange.candles = candles
    monkeypatch.setattr(ccxt_feed.time, "time", lambda: (T0 + 1000 * H) / 1000)
    summary = poll_bar_feed_task(btc.pk)
    assert summary["created"] == 100 and summary["error"] == ""
    ticked = paper_tick()
    assert ticked["bars"] == 100 and ticked["errors"] == 0
    assert PaperAccount.objects.get(agent=agent).bars_processed == 100


def test_the_bar_feed_command(exchange):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    instrument = InstrumentFactory(symbol="BTCUSDT", bar_interval="1h")
    with pytest.raises(CommandError, match="--exchange: required"):
        call_command("bar_feed", "set", "BTCUSDT", stdout=StringIO())
    with pytest.raises(CommandError, match="timeframe: must match the instrument's bar interval '1h'"):
        call_command("bar_feed", "set", "BTCUSDT", "--exchange", "binance", "--market", "BTC/USDT",
                     "--timeframe", "1d", stdout=StringIO())
    out = StringIO()
    call_command("bar_feed", "set", "BTCUSDT", "--exchange", "binance", "--market", "BTC/USDT",
                 "--api-base-url", exchange.url, "--option", 'fetchMarkets={"types": ["spot"]}',
                 "--start", "2023-11-14T22:00:00Z", stdout=out)
    assert "BTCUSDT: feed binance BTC/USDT 1h every 60 s, enabled." in out.getvalue()
    exchange.candles = walk(5)
    out = StringIO()
    call_command("bar_feed", "poll", "BTCUSDT", stdout=out)
    assert "BTCUSDT: 5 candles fetched, 5 bars created, 0 updated." in out.getvalue()
    assert stored_hours(instrument) == [T0 + i * H for i in range(5)]
    out = StringIO()
    call_command("bar_feed", "list", stdout=out)
    assert out.getvalue().splitlines()[1].split()[:7] == ["BTCUSDT", "binance", "BTC/USDT", "1h", "60s", "yes", "5"]
    call_command("bar_feed", "disable", "BTCUSDT", stdout=StringIO())
    with pytest.raises(CommandError, match="no enabled feed"):
        call_command("bar_feed", "poll", "BTCUSDT", stdout=StringIO())
