"""The replay feed: bundled datasets' newest bars, held back and released a few at a time.

`make run` has no market connection, so to let paper agents trade visibly the newest
LAB_REPLAY_HOLD_BACK_BARS bars of each bundled dataset are removed from the database by
:func:`replay_setup` (``manage.py replay_setup``) and remembered as a ``ReplayCursor`` (the
bars themselves are re-read from the bundled CSV, which never changes). Every
LAB_REPLAY_INTERVAL_SECONDS, while LAB_REPLAY_ENABLED, :func:`replay_tick` releases the next
LAB_REPLAY_BARS_PER_TICK bars of each instrument through the ordinary CSV importer (the same
upsert, the same data_version bump as ``import_prices``). The paper engine cannot tell these bars
from imported ones. ``ReplayFeed`` is this feed behind the ``agents.market.feeds.BarFeed``
interface, like the exchanges' ``agents.market.feeds.ccxt_feed.CcxtFeed``.
"""

import functools
import io
import logging

from django.conf import settings
from django.db import transaction

from agents.market.cache import mark_bars_changed
from agents.market.feeds import FeedResult
from agents.market.importer import import_bars_csv, parse_bars_csv
from agents.market.models import Instrument, PriceBar
from agents.market.samples import get_sample_dataset, select_sample_datasets
from graduation.models import PaperAccount, ReplayCursor

logger = logging.getLogger(__name__)

# Never hold back so much that learning has nothing left to learn from.
MIN_BARS_KEPT = 100


@functools.lru_cache(maxsize=8)
def _bundled_bars(symbol):
    return tuple(parse_bars_csv(get_sample_dataset(symbol).path))


def replay_setup(symbols=None, *, hold_back=None, restart=False):
    """Hold back the newest bars of each loaded bundled dataset. Returns one line per dataset.

    Safe to run at every start, after ``load_sample_data`` (which puts the whole file back):
    a replay already set up resumes where it was (only the bars not yet released are removed
    again); ``restart=True`` (or a different hold-back) starts it over.
    """
    hold_back = hold_back or settings.LAB_REPLAY_HOLD_BACK_BARS
    lines = []
    for dataset in select_sample_datasets(symbols):
        instrument = Instrument.objects.filter(symbol=dataset.symbol).first()
        if instrument is None:
            lines.append(f"{dataset.symbol}: not loaded (run load_sample_data first); skipped")
            continue
        bundled = _bundled_bars(dataset.symbol)
        hold = min(hold_back, max(0, len(bundled) - MIN_BARS_KEPT))
        if hold <= 0:
            lines.append(f"{dataset.symbol}: too few bars to hold any back; skipped")
            continue
        held_from = bundled[-hold].timestamp
        cursor = ReplayCursor.objects.filter(instrument=instrument).first()
        resume = (not restart and cursor is not None and cursor.held_from == held_from and cursor.total == hold
                  and cursor.remaining > 0)
        released = cursor.released if resume else 0
        first_held = bundled[-hold + released].timestamp
        with transaction.atomic():
            deleted, _ = PriceBar.objects.filter(instrument=instrument, timestamp__gte=first_held).delete()
            if deleted:
                mark_bars_changed(instrument.pk)
            ReplayCursor.objects.update_or_create(
                instrument=instrument,
                defaults={"symbol": dataset.symbol, "held_from": held_from, "total": hold, "released": released},
            )
        ahead = PaperAccount.objects.filter(
            agent__instrument=instrument, closed_at__isnull=True, last_bar_timestamp__gte=first_held
        ).count()
        verb = f"resuming: {hold - released} of {hold} bars" if resume else f"holding back {hold} bars"
        lines.append(
            f"{dataset.symbol}: {verb} from {first_held:%Y-%m-%d %H:%M} ({deleted} removed from the database)"
            + (f"; {ahead} open paper account(s) already saw them and wait for newer bars" if ahead else "")
        )
    return lines


def _csv(bars):
    out = io.StringIO()
    out.write("timestamp,open,high,low,close,volume\n")
    for b in bars:
        out.write(f"{b.timestamp.isoformat()},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}\n")
    out.seek(0)
    return out


def replay_tick(*, per_tick=None, force=False):
    """Release the next bars of every unfinished replay; returns {symbol: bars released}."""
    if not (settings.LAB_REPLAY_ENABLED or force):
        return {}
    per_tick = per_tick or settings.LAB_REPLAY_BARS_PER_TICK
    released = {}
    feed = ReplayFeed(per_tick)
    for cursor in ReplayCursor.objects.select_related("instrument").order_by("symbol"):
        if cursor.remaining <= 0:
            continue
        try:
            result = feed.poll(cursor.instrument)
        except KeyError:
            logger.warning("replay: no bundled dataset %s any more; skipped", cursor.symbol)
            continue
        if result.fetched:
            released[cursor.symbol] = result.fetched
    return released


class ReplayFeed:
    """The replay as a ``BarFeed``: one poll releases the instrument's next held-back bars."""

    name = "replay"

    def __init__(self, per_tick=None):
        self.per_tick = per_tick

    def poll(self, instrument):
        cursor = ReplayCursor.objects.filter(instrument=instrument).first()
        if cursor is None or cursor.remaining <= 0:
            return FeedResult(notes=["no replay held back for this instrument"])
        per_tick = self.per_tick or settings.LAB_REPLAY_BARS_PER_TICK
        held = [b for b in _bundled_bars(cursor.symbol) if b.timestamp >= cursor.held_from]
        batch = held[cursor.released:cursor.released + per_tick]
        with transaction.atomic():
            claimed = ReplayCursor.objects.filter(pk=cursor.pk, released=cursor.released).update(
                released=cursor.released + len(batch)
            )
            if not claimed or not batch:
                return FeedResult()
            done = import_bars_csv(_csv(batch), symbol=cursor.symbol)
        return FeedResult(fetched=len(batch), created=done.created, updated=done.updated)
