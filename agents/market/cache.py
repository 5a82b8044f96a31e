"""An instrument's bars as numpy arrays (`Bars`), cached per process.

`load_bars(instrument)` costs one cheap query when cached: it reads the instrument's
`data_version` (a primary-key lookup) and returns the arrays cached under
(instrument id, data_version, created_at). Every import that changes bars bumps data_version, so
a stale entry is never served; anything else that writes PriceBar rows must call
`mark_bars_changed(instrument_id)` in the same transaction. (created_at is in the key because
SQLite reuses the ids of rolled-back rows, which happens between tests.)

On a miss the bars are read with `values_list` (no model instances) and converted to arrays.
The cached arrays are shared by every caller in the process and therefore read-only: copy
before modifying in place. The cache is a small LRU (BAR_CACHE_SIZE instruments); entries of
older versions of an instrument are dropped when a newer one is loaded. Tests that create
instruments should call `clear_bar_cache()` (e.g. from an autouse fixture).
"""

import threading
from collections import OrderedDict
from datetime import UTC

import numpy as np
from django.db.models import F

from agents.market.bars import Bars
from agents.market.models import Instrument, PriceBar

BAR_CACHE_SIZE = 32

_cache: "OrderedDict[tuple, Bars]" = OrderedDict()
_lock = threading.Lock()


def _instrument_id(instrument_or_id):
    return instrument_or_id.pk if isinstance(instrument_or_id, Instrument) else int(instrument_or_id)


def _version_key(instrument_id):
    row = Instrument.objects.filter(pk=instrument_id).values_list("data_version", "created_at").first()
    if row is None:
        raise Instrument.DoesNotExist(f"no instrument with id {instrument_id}")
    return (instrument_id, *row)


def bars_version(instrument_or_id) -> int:
    """The instrument's current data_version (one primary-key query)."""
    return _version_key(_instrument_id(instrument_or_id))[1]


def mark_bars_changed(instrument_or_id) -> None:
    """Bump data_version after writing bars, so cached arrays of the instrument are not served again."""
    Instrument.objects.filter(pk=_instrument_id(instrument_or_id)).update(data_version=F("data_version") + 1)


def read_bars(instrument_or_id) -> Bars:
    """The instrument's bars from the database, oldest first, bypassing the cache."""
    rows = list(
        PriceBar.objects.filter(instrument_id=_instrument_id(instrument_or_id))
        .order_by("timestamp")
        .values_list("timestamp", "open", "high", "low", "close", "volume")
    )
    if not rows:
        empty = np.empty(0, dtype=np.float64)
        return Bars.from_columns(np.empty(0, dtype="datetime64[ns]"), empty, empty, empty, empty, empty)
    timestamps, open_, high, low, close, volume = zip(*rows, strict=True)
    # numpy takes naive datetimes only: express every (aware) value in UTC, then drop the tzinfo.
    naive = [ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts for ts in timestamps]
    return Bars.from_columns(
        np.array(naive, dtype="datetime64[us]").astype("datetime64[ns]"), open_, high, low, close, volume
    )


def _freeze(bars: Bars) -> Bars:
    for array in (bars.timestamps, bars.open, bars.high, bars.low, bars.close, bars.volume):
        array.flags.writeable = False
    return bars


def load_bars(instrument_or_id) -> Bars:
    """The instrument's bars as read-only arrays, oldest first; cached per (id, data_version)."""
    key = _version_key(_instrument_id(instrument_or_id))
    with _lock:
        bars = _cache.get(key)
        if bars is not None:
            _cache.move_to_end(key)
            return bars
    # Read outside the lock: two threads missing together both read, and the result is the same.
    bars = _freeze(read_bars(key[0]))
    with _lock:
        for stale in [k for k in _cache if k[0] == key[0] and k != key]:
            del _cache[stale]
        _cache[key] = bars
        _cache.move_to_end(key)
        while len(_cache) > BAR_CACHE_SIZE:
            _cache.popitem(last=False)
    return bars


def clear_bar_cache() -> None:
    """Forget every cached array (tests; after restoring a database)."""
    with _lock:
        _cache.clear()
