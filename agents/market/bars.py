"""Bars as numpy arrays: what the strategies and the backtest engine consume.

Pure numpy, no Django, so the engine and strategies can be benchmarked and tested alone.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Bars:
    """OHLCV columns of one instrument, oldest first. timestamps are datetime64[ns] (UTC)."""

    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self):
        return len(self.close)

    def slice(self, start, stop=None):
        """Bars [start, stop) as views, no copy."""
        s = slice(start, stop)
        return Bars(self.timestamps[s], self.open[s], self.high[s], self.low[s], self.close[s], self.volume[s])

    @classmethod
    def from_columns(cls, timestamps, open, high, low, close, volume=None):
        close = np.asarray(close, dtype=np.float64)
        return cls(
            timestamps=np.asarray(timestamps, dtype="datetime64[ns]"),
            open=np.asarray(open, dtype=np.float64),
            high=np.asarray(high, dtype=np.float64),
            low=np.asarray(low, dtype=np.float64),
            close=close,
            volume=np.zeros_like(close) if volume is None else np.asarray(volume, dtype=np.float64),
        )
