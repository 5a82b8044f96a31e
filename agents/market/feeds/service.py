"""Bar feed services: configure an instrument's feed, turn it off, poll it (the beat task's body).

Every write of a feed's beat row goes through agents.services.scheduling.feeds.
"""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.market.feeds.ccxt_feed import TIMEFRAMES, CcxtFeed
from agents.market.models import BarFeedConfig, FeedKind, Instrument
from agents.services.scheduling.feeds import feed_schedule_remove, feed_schedule_sync
from core.errors import ValidationFailed

logger = logging.getLogger(__name__)

MIN_POLL_SECONDS = 5
MAX_POLL_SECONDS = 7 * 86400


def _exchange_problems(exchange, timeframe):
    """{field: rule} for an exchange id and timeframe ccxt cannot serve (checked offline)."""
    import ccxt

    if exchange not in ccxt.exchanges:
        return {"exchange": f"{exchange!r} is not a ccxt exchange id (e.g. binance, kraken, coinbase, bitstamp)"}
    instance = getattr(ccxt, exchange)()
    if not instance.has.get("fetchOHLCV"):
        return {"exchange": f"{exchange} has no OHLCV (candles) endpoint in ccxt"}
    timeframes = instance.timeframes or {}
    if timeframes and timeframe not in timeframes:
        return {"timeframe": f"{exchange} does not offer {timeframe!r} candles (it offers: {', '.join(timeframes)})"}
    return {}


def feed_configure(instrument, *, exchange, market_symbol, timeframe=None, poll_seconds=60, enabled=True,
                   start_at=None, api_base_url="", ccxt_options=None):
    """Create or change the instrument's ccxt feed and its beat row; ValidationFailed naming each field."""
    errors = {}
    exchange = (exchange or "").strip().lower()
    market_symbol = (market_symbol or "").strip()
    wanted = TIMEFRAMES[instrument.bar_interval]
    timeframe = (timeframe or wanted).strip()
    if not market_symbol:
        errors["market_symbol"] = "required: the exchange's market, e.g. BTC/USDT"
    if timeframe != wanted:
        errors["timeframe"] = (f"must match the instrument's bar interval {instrument.bar_interval!r}: "
                               f"use {wanted!r}, or feed another instrument")
    if not isinstance(poll_seconds, int) or not MIN_POLL_SECONDS <= poll_seconds <= MAX_POLL_SECONDS:
        errors["poll_seconds"] = f"must be an integer from {MIN_POLL_SECONDS} to {MAX_POLL_SECONDS}"
    if api_base_url and not str(api_base_url).startswith(("http://", "https://")):
        errors["api_base_url"] = "must be an http:// or https:// URL (scheme and host)"
    if ccxt_options is not None and not isinstance(ccxt_options, dict):
        errors["ccxt_options"] = "must be a JSON object"
    if not instrument.has_intrabar_range and instrument.bars.exists():
        errors["instrument"] = f"{instrument.symbol} holds close-only bars; exchange candles are OHLC: feed another"
    if not errors:
        errors.update(_exchange_problems(exchange, timeframe))
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        config, _ = BarFeedConfig.objects.update_or_create(
            instrument=instrument,
            defaults={"kind": FeedKind.CCXT, "exchange": exchange, "market_symbol": market_symbol,
                      "timeframe": timeframe, "poll_seconds": poll_seconds, "enabled": enabled,
                      "start_at": start_at, "api_base_url": api_base_url or "", "ccxt_options": ccxt_options or {}},
        )
        feed_schedule_sync(config)
    return config


def feed_set_enabled(instrument, enabled):
    config = BarFeedConfig.objects.filter(instrument=instrument).first()
    if config is None:
        raise ValidationFailed({"instrument": f"{instrument.symbol} has no feed; configure one first"})
    with transaction.atomic():
        config.enabled = enabled
        config.save(update_fields=["enabled", "updated_at"])
        feed_schedule_sync(config)
    return config


def feed_remove(instrument):
    with transaction.atomic():
        deleted, _ = BarFeedConfig.objects.filter(instrument=instrument).delete()
        feed_schedule_remove(instrument.pk)
    return bool(deleted)


def feed_for(config):
    return CcxtFeed(config)


def poll_feed(instrument_id, *, feed=None):
    """One poll of the instrument's feed; records its outcome on the config. Returns a summary dict."""
    config = BarFeedConfig.objects.select_related("instrument").filter(instrument_id=instrument_id).first()
    if config is None or not config.enabled:
        return {"skipped": "no enabled feed"}
    instrument = config.instrument
    started = timezone.now()
    try:
        result = (feed or feed_for(config)).poll(instrument)
    except Exception as exc:  # a bug or an unexpected library error: recorded, the next poll tries again
        logger.exception("feed of %s failed", instrument.symbol)
        BarFeedConfig.objects.filter(pk=config.pk).update(last_polled_at=started,
                                                          last_error=f"{exc.__class__.__name__}: {exc}"[:2000])
        return {"error": str(exc)}
    values = {"last_polled_at": started, "last_error": result.error[:2000]}
    if result.ok:
        values["last_success_at"] = started
    if result.created:
        values["bars_imported"] = F("bars_imported") + result.created
    BarFeedConfig.objects.filter(pk=config.pk).update(**values)
    if result.created or result.updated or result.error:
        logger.info("feed %s: %d fetched, %d created, %d updated%s", instrument.symbol, result.fetched,
                    result.created, result.updated, f"; error: {result.error}" if result.error else "")
    return {"fetched": result.fetched, "created": result.created, "updated": result.updated, "notes": result.notes,
            "error": result.error}


__all__ = ["Instrument", "feed_configure", "feed_remove", "feed_set_enabled", "poll_feed"]
