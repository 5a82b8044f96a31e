import uuid

from django.conf import settings
from django.db import models


class BarInterval(models.TextChoices):
    MINUTE = "1m", "1 minute"
    FIVE_MINUTES = "5m", "5 minutes"
    FIFTEEN_MINUTES = "15m", "15 minutes"
    HOUR = "1h", "1 hour"
    FOUR_HOURS = "4h", "4 hours"
    DAY = "1d", "1 day"
    WEEK = "1w", "1 week"
    MONTH = "1mo", "1 month"


# Bars per year used to annualise returns; equities trade ~252 days, FX ~24x5x52 hours.
DEFAULT_BARS_PER_YEAR = {
    "1m": 252 * 390,
    "5m": 252 * 78,
    "15m": 252 * 26,
    "1h": 24 * 5 * 52,
    "4h": 6 * 5 * 52,
    "1d": 252,
    "1w": 52,
    "1mo": 12,
}


class Instrument(models.Model):
    symbol = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, blank=True)
    bar_interval = models.CharField(max_length=4, choices=BarInterval.choices, default=BarInterval.DAY)
    bars_per_year = models.FloatField(default=252)
    # Bumped by every import that changes bars; caches of bar arrays key on it.
    data_version = models.PositiveIntegerField(default=0)
    # False for close-only series (open = high = low = close): no intrabar range, so strategies that
    # read highs and lows are refused and stops are judged on closes (agents.strategies.registry).
    has_intrabar_range = models.BooleanField(default=True)
    # Who created it by an upload: they may import into it; so may anyone with agents.change_instrument.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self):
        return self.symbol


class PriceBar(models.Model):
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="bars")
    timestamp = models.DateTimeField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(default=0)

    class Meta:
        ordering = ["instrument", "timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "timestamp"], name="unique_bar_per_instrument_timestamp"),
        ]

    def __str__(self):
        return f"{self.instrument_id}@{self.timestamp:%Y-%m-%d %H:%M}"


class FeedKind(models.TextChoices):
    CCXT = "ccxt", "Crypto exchange (ccxt)"


class BarFeedConfig(models.Model):
    """Where an instrument's new bars come from (agents.market.feeds): one feed per instrument.

    Polled by the beat entry ``instrument:<id>:feed`` that agents.services.scheduling keeps.
    """

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="feed")
    kind = models.CharField(max_length=16, choices=FeedKind.choices, default=FeedKind.CCXT)
    exchange = models.CharField(max_length=40, help_text="ccxt exchange id, e.g. binance, kraken, coinbase")
    market_symbol = models.CharField(max_length=40, help_text="the exchange's market, e.g. BTC/USDT")
    timeframe = models.CharField(max_length=8, help_text="ccxt timeframe; must match the instrument's bar interval")
    # Blank: the exchange's own API. Otherwise the scheme and host that replace it in every API URL
    # (a testnet, a proxy, or the tests' fake exchange), the paths kept.
    api_base_url = models.URLField(blank=True)
    # Extra ccxt exchange options (e.g. {"fetchMarkets": {"types": ["spot"]}}).
    ccxt_options = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    poll_seconds = models.PositiveIntegerField(default=60)
    # Bars before this time are never fetched (the first poll starts here when the instrument has no bars).
    start_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    bars_imported = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.instrument_id}: {self.exchange} {self.market_symbol} {self.timeframe}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class BarImport(models.Model):
    """An uploaded bar file imported by a worker (large uploads); polled for progress."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    symbol = models.CharField(max_length=32)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    phase = models.CharField(max_length=10, blank=True)  # reading | writing while running
    path = models.CharField(max_length=500)  # the upload, under LAB_VAR_DIR/imports; removed when done
    filename = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    options = models.JSONField(default=dict)  # ImportOptions fields + name, interval, bars_per_year
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict)  # created, updated, unchanged, notes
    errors = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"import {self.pk} of {self.symbol} ({self.status})"
