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
