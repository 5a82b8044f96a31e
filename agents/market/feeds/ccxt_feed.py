"""A crypto exchange's candles through ccxt (https://docs.ccxt.com): the real bar feed.

One poll, for one instrument and its ``BarFeedConfig``:

1. ``since`` = the last stored bar's open time + one timeframe (or the feed's ``start_at``, or
   LAB_FEED_PAGE_LIMIT bars back for an instrument without bars);
2. ``exchange.fetch_ohlcv(market, timeframe, since, limit)`` page after page (at most
   LAB_FEED_MAX_PAGES a poll) until a page brings nothing new. ccxt's own throttle
   (``enableRateLimit``) spaces the requests by the exchange's ``rateLimit``; a network error, a
   timeout or a 429/418 is retried LAB_FEED_MAX_RETRIES times with exponential backoff from
   LAB_FEED_BACKOFF_SECONDS, capped at LAB_FEED_MAX_BACKOFF_SECONDS (a Retry-After header is
   honoured up to the cap); any other exchange error stops the poll;
3. the candle still forming (open time + timeframe after now) is left for a later poll; a
   candle repeated in a page is kept once (the last copy: an exchange's correction); a gap
   (a missing candle, common when nothing traded) is reported, not filled;
4. the candles go through the CSV importer's parser (epoch ms, OHLCV) with its rules and then
   its upsert; at the first invalid candle the poll stores the valid ones before it and stops,
   naming the candle and the rule: the next poll starts again from there.
"""

import io
import logging
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings

from agents.market.csvparse import parse_bars
from agents.market.csvreport import ImportOptions
from agents.market.feeds import FeedResult
from agents.market.importer import import_parsed_bars
from agents.market.models import PriceBar

logger = logging.getLogger(__name__)

# The lab's bar intervals as ccxt timeframes.
TIMEFRAMES = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1h", "4h": "4h", "1d": "1d", "1w": "1w", "1mo": "1M"}


def _ccxt():
    import ccxt  # imported on use: the web process never needs it

    return ccxt


def _rebase(urls, base):
    """Every URL in ccxt's ``urls['api']`` (a str or nested dicts) moved to ``base``, paths kept."""
    if isinstance(urls, dict):
        return {key: _rebase(value, base) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


def make_exchange(config):
    """The ccxt exchange object of a feed (no network until the first call)."""
    ccxt = _ccxt()
    klass = getattr(ccxt, config.exchange)
    exchange = klass({
        "enableRateLimit": True,
        "timeout": int(settings.LAB_FEED_TIMEOUT_SECONDS * 1000),
        "options": dict(config.ccxt_options or {}),
    })
    if config.api_base_url:
        exchange.urls["api"] = _rebase(exchange.urls["api"], config.api_base_url)
    return exchange


class CcxtFeed:
    name = "ccxt"

    def __init__(self, config, *, exchange=None, sleep=time.sleep, now_ms=None):
        self.config = config
        self.exchange = exchange or make_exchange(config)
        self.sleep = sleep
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.step_ms = self.exchange.parse_timeframe(config.timeframe) * 1000

    # --- fetching ---------------------------------------------------------------------------
    def _retry_delay(self, attempt, exc):
        ccxt = _ccxt()
        delay = settings.LAB_FEED_BACKOFF_SECONDS * (2 ** attempt)
        if isinstance(exc, ccxt.DDoSProtection):  # RateLimitExceeded is one
            headers = self.exchange.last_response_headers or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            try:
                delay = max(delay, float(retry_after))
            except (TypeError, ValueError):
                delay = max(delay, self.exchange.rateLimit / 1000)
        return min(delay, settings.LAB_FEED_MAX_BACKOFF_SECONDS)

    def fetch_page(self, since, result):
        ccxt = _ccxt()
        attempts = settings.LAB_FEED_MAX_RETRIES
        for attempt in range(attempts + 1):
            try:
                return self.exchange.fetch_ohlcv(self.config.market_symbol, self.config.timeframe, since=since,
                                                 limit=settings.LAB_FEED_PAGE_LIMIT)
            except ccxt.NetworkError as exc:  # timeouts, 429/418, 5xx, connection errors
                if attempt == attempts:
                    raise
                delay = self._retry_delay(attempt, exc)
                result.notes.append(f"{exc.__class__.__name__} on attempt {attempt + 1}; retried after {delay:g} s")
                logger.warning("feed %s: %s (attempt %d), retrying in %.1f s", self.config, exc.__class__.__name__,
                               attempt + 1, delay)
                self.sleep(delay)
        return []  # not reached

    # --- one poll ---------------------------------------------------------------------------
    def _since(self, instrument):
        last = PriceBar.objects.filter(instrument=instrument).order_by("-timestamp").values_list(
            "timestamp", flat=True).first()
        if last is not None:
            return int(last.timestamp() * 1000) + self.step_ms, int(last.timestamp() * 1000)
        if self.config.start_at is not None:
            return int(self.config.start_at.timestamp() * 1000), None
        return self.now_ms() - settings.LAB_FEED_PAGE_LIMIT * self.step_ms, None

    def poll(self, instrument):
        ccxt = _ccxt()
        result = FeedResult()
        since, last = self._since(instrument)
        candles = {}
        try:
            for _ in range(settings.LAB_FEED_MAX_PAGES):
                page = self.fetch_page(since, result)
                result.fetched += len(page)
                fresh = self._closed(page, since, result)
                for candle in fresh:
                    if candle[0] in candles:
                        result.notes.append(f"candle {_iso(candle[0])} repeated; the last copy kept")
                    candles[candle[0]] = candle
                if not fresh or len(page) < settings.LAB_FEED_PAGE_LIMIT:
                    break
                since = max(candles) + self.step_ms
        except ccxt.BaseError as exc:
            result.error = f"{self.config.exchange}: {exc.__class__.__name__}: {str(exc)[:300]}"
        if candles:
            self._store(instrument, [candles[t] for t in sorted(candles)], last, result)
        return result

    def _closed(self, page, since, result):
        now = self.now_ms()
        out = []
        for candle in page:
            ts = candle[0] if isinstance(candle, list | tuple) and candle else None
            if not isinstance(ts, int) or ts < since:
                if not isinstance(ts, int):
                    out.append(candle)  # let the parser name the problem
                continue
            if ts + self.step_ms > now:
                result.notes.append(f"candle {_iso(ts)} is still forming; left for a later poll")
                continue
            out.append(candle)
        return out

    def _store(self, instrument, candles, last, result):
        text = io.StringIO()
        text.write("timestamp,open,high,low,close,volume\n")
        for candle in candles:
            cells = list(candle)[:6] if isinstance(candle, list | tuple) else [candle]
            text.write(",".join("" if c is None else str(c) for c in cells) + "\n")
        text.seek(0)
        report = parse_bars(text, ImportOptions())
        bars = report.bars
        if not report.ok:
            first_bad = _first_error_line(report)
            bars = [b for b in bars if b.line < first_bad]
            bad = candles[first_bad - 2] if 0 <= first_bad - 2 < len(candles) else None
            rules = "; ".join(report.errors.messages[:3])
            result.error = (f"candle {bad!r} refused ({rules}); {len(bars)} earlier candles stored, the next poll "
                            "starts again from it")
        self._report_gaps(bars, last, result)
        if bars:
            done = import_parsed_bars(bars, symbol=instrument.symbol, interval=instrument.bar_interval,
                                      close_only=not instrument.has_intrabar_range)
            result.created, result.updated = done.created, done.updated

    def _report_gaps(self, bars, last, result):
        previous = last
        for bar in bars:
            ts = int(bar.timestamp.timestamp() * 1000)
            if previous is not None and ts - previous > self.step_ms:
                missing = (ts - previous) // self.step_ms - 1
                result.notes.append(f"gap: {missing} candle(s) missing before {_iso(ts)} (none traded, or the "
                                    "exchange lost them); not filled")
            previous = ts


def _first_error_line(report):
    for message in report.errors.messages:
        if message.startswith("line "):
            try:
                return int(message.split()[1].rstrip(":"))
            except ValueError:
                pass
    return 2


def _iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
