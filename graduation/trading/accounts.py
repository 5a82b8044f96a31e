"""Paper accounts in the database: open, close, and process the bars newer than the last seen.

Cost per account and tick, whatever its history: one query for the bars (cached arrays, see
agents.market.cache), one conditional UPDATE of the account and three bulk INSERTs (fills,
trades, equity points). Decisions use only the past: the target for bar t is computed by the
pinned version's template on the bars up to and including t (a prefix), never on later bars.
At most MAX_BARS_PER_TICK bars are processed per account and tick; the rest wait for the next.
"""

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agents.market.bars import Bars
from agents.market.cache import load_bars
from agents.strategies.registry import get_template
from graduation.models import AccountRole, PaperAccount, PaperEquityPoint, PaperFill, PaperTrade
from graduation.trading import engine
from graduation.trading.broker import broker_for

logger = logging.getLogger(__name__)

MAX_BARS_PER_TICK = 500


class AccountBusy(Exception):
    """Another process wrote the account meanwhile; this round's work was discarded."""


def to_datetime(value):
    """A bar timestamp (numpy datetime64, UTC) as an aware datetime."""
    micros = int(np.datetime64(value, "us").astype(np.int64))
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def to_datetime64(value):
    return np.datetime64(value.astimezone(dt.UTC).replace(tzinfo=None), "ns")


def version_costs(account, template_key, params):
    clean = get_template(template_key).validate(params or {})
    return clean, engine.Costs(account.fee_bps, account.slippage_bps, clean["stop_loss"], clean["take_profit"])


def decide(template, bars: Bars, index, params):
    """The target decided on bar ``index``'s close, from bars[0..index] only."""
    return float(template.target_positions(bars.slice(0, index + 1), params)[-1])


def opening_snapshot(agent, version, *, at=None):
    """(timestamp of the opening bar, the target decided on it) for a new account; (None, 0) without bars.

    The opening bar is the newest one, or the bar at ``at`` (a challenger opens on its champion's
    last bar so that both process the same bars from then on); (None, 0) when ``at`` is not a bar.
    """
    bars = load_bars(agent.instrument_id)
    if not len(bars) or version is None:
        return None, 0.0
    index = len(bars) - 1
    if at is not None:
        index = int(np.searchsorted(bars.timestamps, to_datetime64(at)))
        if index >= len(bars) or bars.timestamps[index] != to_datetime64(at):
            return None, 0.0
    template = get_template(agent.strategy_template)
    return to_datetime(bars.timestamps[index]), decide(template, bars, index, template.validate(version.params))


def open_account(agent, version, *, live=False, snapshot=(None, 0.0), now=None, role=AccountRole.CHAMPION,
                 like=None):
    """Open an account of the agent (inside the caller's transaction) at the agent's initial capital,
    or with the capital and costs of the account ``like`` (a challenger copies its champion's).

    ``snapshot`` is :func:`opening_snapshot`'s answer, computed before the transaction: the
    account starts flat on that bar with that decision pending.
    """
    now = now or timezone.now()
    bar_ts, target = snapshot
    capital = float(like.initial_capital if like else agent.initial_capital)
    fee_bps, slippage_bps = (like.fee_bps, like.slippage_bps) if like else (agent.fee_bps, agent.slippage_bps)
    account = PaperAccount.objects.create(
        agent=agent, live=live, role=role, version=version, opened_at=now, initial_capital=capital,
        fee_bps=fee_bps, slippage_bps=slippage_bps, cash=capital, equity=capital, peak_equity=capital,
        opened_bar_timestamp=bar_ts, last_bar_timestamp=bar_ts, pending_target=target,
    )
    if bar_ts is not None:
        PaperEquityPoint.objects.create(account=account, timestamp=bar_ts, equity=capital, position=0.0,
                                        target=target)
    return account


def close_account(agent, reason, *, now=None, role=None):
    """Close the agent's open account of ``role``, or every open one (inside the caller's transaction)."""
    qs = PaperAccount.objects.filter(agent=agent, closed_at__isnull=True)
    if role is not None:
        qs = qs.filter(role=role)
    return qs.update(closed_at=now or timezone.now(), close_reason=reason[:300])


def open_account_of(agent):
    """The agent's open champion account: the one it trades (paper or live); None when not trading."""
    return (PaperAccount.objects.filter(agent=agent, role=AccountRole.CHAMPION, closed_at__isnull=True)
            .select_related("version").first())


def challenger_account_of(agent):
    """The agent's open shadow account of a challenger version, or None."""
    return (PaperAccount.objects.filter(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True)
            .select_related("version").first())


# --- state <-> row ------------------------------------------------------------------------------------
_STATE_FIELDS = ("cash", "equity", "peak_equity", "units", "position", "pending_target", "last_desired", "stopped",
                 "max_drawdown", "bars_processed", "closed_trades", "winning_trades", "realised_pnl", "fees_paid",
                 "ruined")


def state_of(account):
    state = engine.State(**{name: getattr(account, name) for name in _STATE_FIELDS})
    if account.open_trade:
        trade = dict(account.open_trade)
        trade["entry_time"] = parse_datetime(trade["entry_time"])
        state.trade = trade
    return state


def _state_values(state):
    values = {name: getattr(state, name) for name in _STATE_FIELDS}
    trade = dict(state.trade) if state.trade else {}
    if trade:
        trade["entry_time"] = trade["entry_time"].isoformat()
    values["open_trade"] = trade
    return values


# --- processing -------------------------------------------------------------------------------------
@dataclass
class Processed:
    account: PaperAccount
    bars: int = 0
    fills: int = 0
    trades: int = 0
    more: bool = False  # bars left for the next tick


def process_account(account, *, max_bars=MAX_BARS_PER_TICK):
    """Process the bars newer than the account's last one; returns what was done.

    Raises AccountBusy when another process wrote the account meanwhile (nothing is saved).
    """
    agent = account.agent
    bars = load_bars(agent.instrument_id)
    n = len(bars)
    if not n or account.version is None or account.ruined:
        return Processed(account)
    if account.last_bar_timestamp is None:
        # Opened before the instrument had bars: start flat on the first bar seen.
        return _start_late(account, agent, bars)
    start = int(np.searchsorted(bars.timestamps, to_datetime64(account.last_bar_timestamp), side="right"))
    if start >= n:
        return Processed(account)
    stop = min(n, start + max_bars)
    template = get_template(agent.strategy_template)
    params, costs = version_costs(account, agent.strategy_template, account.version.params)
    state = state_of(account)
    broker = broker_for(account, agent.instrument.symbol)
    points, fills, trades = [], [], []
    o, h, lo, c, ts = bars.open, bars.high, bars.low, bars.close, bars.timestamps
    for t in range(start, stop):
        bar = engine.Bar(to_datetime(ts[t]), float(o[t]), float(h[t]), float(lo[t]), float(c[t]))
        result = engine.step(state, bar, decide(template, bars, t, params), costs, broker)
        points.append(result.point)
        fills.extend(result.fills)
        trades.extend(result.trades)
        if state.ruined:
            break
    held = broker.positions().get(agent.instrument.symbol, 0.0)
    if not state.ruined and abs(held - state.units) > 1e-9 * max(1.0, abs(state.units)):
        # A real broker could disagree (a partial fill, a manual trade): say so loudly.
        logger.error("account %s: the broker holds %r units, the ledger %r", account.pk, held, state.units)
    _save(account, state, points, fills, trades)
    return Processed(account, bars=len(points), fills=len(fills), trades=len(trades), more=stop < n)


def _start_late(account, agent, bars):
    template = get_template(agent.strategy_template)
    ts = to_datetime(bars.timestamps[-1])
    target = decide(template, bars, len(bars) - 1, template.validate(account.version.params))
    state = state_of(account)
    state.pending_target = target
    point = engine.Point(ts, state.equity, 0.0, target)
    _save(account, state, [point], [], [], extra={"opened_bar_timestamp": ts})
    return Processed(account)


def _save(account, state, points, fills, trades, extra=None):
    values = _state_values(state)
    values.update(extra or {})
    values["last_bar_timestamp"] = points[-1].timestamp
    with transaction.atomic():
        updated = PaperAccount.objects.filter(
            pk=account.pk, revision=account.revision, closed_at__isnull=True
        ).update(revision=account.revision + 1, **values)
        if not updated:
            raise AccountBusy(f"paper account {account.pk} was processed or closed meanwhile")
        PaperEquityPoint.objects.bulk_create(
            [PaperEquityPoint(account=account, timestamp=p.timestamp, equity=p.equity, position=p.position,
                              target=p.target) for p in points]
        )
        PaperFill.objects.bulk_create(
            [PaperFill(account=account, timestamp=f.timestamp, side=f.side, quantity=f.quantity, price=f.price,
                       reference_price=f.reference_price, fee=f.fee, reason=f.reason, weight_after=f.weight_after)
             for f in fills]
        )
        PaperTrade.objects.bulk_create(
            [PaperTrade(account=account, side=tr.side, entry_time=tr.entry_time, exit_time=tr.exit_time,
                        entry_price=tr.entry_price, exit_price=tr.exit_price, quantity=tr.quantity, pnl=tr.pnl,
                        return_pct=tr.return_pct, bars_held=tr.bars_held, exit_reason=tr.exit_reason)
             for tr in trades]
        )
    for name, value in values.items():
        setattr(account, name, value)
    account.revision += 1
