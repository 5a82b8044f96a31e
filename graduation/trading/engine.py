"""The forward-trading engine (paper or live): one bar at a time, the backtest engine's rules exactly.

Pure Python, no Django: :func:`step` takes the account's state, one new bar, the target the
strategy decided on that bar's close, the costs and a broker, and returns the fills, the trades
closed and the bar's equity point. It knows neither where bars come from nor which broker
executes (graduation.trading.accounts, graduation.trading.broker).

The rules are those of :mod:`agents.backtest.engine` (fill at the next open, sizing by target x
equity after costs and no rebalancing, per-side costs, stops from the entry fill price with the
stop first, flat after a stop until the target changes, ruin at equity 0), restated for one bar;
after ruin the account is flat and frozen, as the backtest trades nothing after ruin. Replaying
the same bars and targets through ``run_backtest`` gives the same fills, trades and equity to
rounding (graduation.trading.consistency checks it for any account).
"""

from dataclasses import dataclass, field

from graduation.trading.broker import Fill, Order

SIGNAL, STOP_LOSS, TAKE_PROFIT, RUIN = "signal", "stop_loss", "take_profit", "ruin"


@dataclass(frozen=True)
class Costs:
    fee_bps: float
    slippage_bps: float
    stop_loss: float = 0.0
    take_profit: float = 0.0

    @property
    def cost(self):
        return (self.fee_bps + self.slippage_bps) / 1e4

    @property
    def slip(self):
        return self.slippage_bps / 1e4


@dataclass
class State:
    cash: float
    equity: float
    peak_equity: float
    units: float = 0.0
    position: float = 0.0  # the target weight in force (0 after a stop)
    pending_target: float = 0.0  # decided on the last bar's close, filled at the next open
    last_desired: float = 0.0  # the target in force on the last bar, before stops
    stopped: bool = False
    trade: dict | None = None
    max_drawdown: float = 0.0
    bars_processed: int = 0
    closed_trades: int = 0
    winning_trades: int = 0
    realised_pnl: float = 0.0
    fees_paid: float = 0.0
    ruined: bool = False


@dataclass(frozen=True)
class Bar:
    timestamp: object  # aware datetime
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class ClosedTrade:
    side: str
    entry_time: object
    exit_time: object
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    return_pct: float
    bars_held: int
    exit_reason: str


@dataclass(frozen=True)
class Point:
    timestamp: object
    equity: float
    position: float
    target: float


@dataclass
class StepResult:
    point: Point
    fills: list = field(default_factory=list)
    trades: list = field(default_factory=list)


def step(state: State, bar: Bar, target_now: float, costs: Costs, broker) -> StepResult:
    """Process one new bar; mutates ``state``. ``target_now`` is the strategy's decision on the
    bar's close (computed from bars up to and including it)."""
    if state.ruined:
        raise ValueError("a ruined account does not trade")
    fills, trades = [], []
    desired = state.pending_target
    if state.stopped and desired != state.last_desired:
        state.stopped = False  # a new signal after a stop
    weight = 0.0 if state.stopped else desired
    if weight != state.position:
        if state.position * weight < 0:
            _fill_to(state, bar, 0.0, bar.open, SIGNAL, costs, broker, fills, trades)
        _fill_to(state, bar, weight, bar.open, SIGNAL, costs, broker, fills, trades)
    if state.trade is not None:
        state.trade["bars"] += 1
        if costs.stop_loss > 0 or costs.take_profit > 0:
            exit_ = _stop_exit(state.trade, bar, costs)
            if exit_ is not None:
                price, reason = exit_
                _fill_to(state, bar, 0.0, price, reason, costs, broker, fills, trades)
                state.stopped = True
    state.last_desired = desired
    equity = state.cash + state.units * bar.close
    if not equity > 0:
        equity = _ruin(state, bar, trades)
    state.equity = equity
    if equity > state.peak_equity:
        state.peak_equity = equity
    if state.peak_equity > 0:
        state.max_drawdown = max(state.max_drawdown, 1.0 - equity / state.peak_equity)
    state.bars_processed += 1
    state.pending_target = 0.0 if state.ruined else float(target_now)
    return StepResult(Point(bar.timestamp, equity, weight, state.pending_target), fills, trades)


def _fill_to(state, bar, weight, price, reason, costs, broker, fills, trades):
    """Trade from the current units to ``weight`` of the post-cost equity at ``price``."""
    before = state.cash + state.units * price
    if not before > 0:
        return
    held = state.units * price / before  # the drifted weight
    sign = 1.0 if weight >= held else -1.0
    after = before * (1.0 + sign * costs.cost * held) / (1.0 + sign * costs.cost * weight)
    quantity = (weight * after / price) - state.units if weight else -state.units
    if quantity != 0:
        fill = broker.submit_order(Order(bar.timestamp, quantity, price, reason, weight))
        state.cash += fill.cash_change
        state.units = state.units + fill.signed_quantity if weight else 0.0
        state.fees_paid += fill.fee
        fills.append(fill)
    else:
        fill = None
    state.position = weight
    if state.trade is None and weight != 0 and fill is not None:
        side = 1 if weight > 0 else -1
        quantity = abs(state.units)
        state.trade = {
            "side": side, "entry_time": bar.timestamp, "entry_price": fill.price, "quantity": quantity,
            "equity_before": before, "notional": quantity * fill.price, "bars": 0,
        }
    elif weight == 0 and state.trade is not None:
        trades.append(_close_trade(state, bar, state.cash, fill.price if fill else price, reason))


def _close_trade(state, bar, equity_after, exit_price, reason):
    trade = state.trade
    pnl = equity_after - trade["equity_before"]
    state.trade = None
    state.closed_trades += 1
    state.winning_trades += pnl > 0
    state.realised_pnl += pnl
    return ClosedTrade(
        "long" if trade["side"] > 0 else "short", trade["entry_time"], bar.timestamp, trade["entry_price"],
        exit_price, trade["quantity"], pnl, pnl / trade["notional"] if trade["notional"] else 0.0, trade["bars"],
        reason,
    )


def _stop_exit(trade, bar, costs):
    """(raw exit price, reason) when the bar touches the trade's stop or take-profit level."""
    ref = trade["entry_price"]
    if trade["side"] > 0:
        if costs.stop_loss > 0:
            level = ref * (1.0 - costs.stop_loss)
            if bar.low <= level:
                return min(bar.open, level), STOP_LOSS
        if costs.take_profit > 0:
            level = ref * (1.0 + costs.take_profit)
            if bar.high >= level:
                return max(bar.open, level), TAKE_PROFIT
    else:
        if costs.stop_loss > 0:
            level = ref * (1.0 + costs.stop_loss)
            if bar.high >= level:
                return max(bar.open, level), STOP_LOSS
        if costs.take_profit > 0:
            level = ref * (1.0 - costs.take_profit)
            if bar.low <= level:
                return min(bar.open, level), TAKE_PROFIT
    return None


def _ruin(state, bar, trades):
    """Equity at or below 0 (only short, the price more than doubling): wiped out and frozen."""
    if state.trade is not None:
        trades.append(_close_trade(state, bar, 0.0, bar.close, RUIN))
    state.cash = state.units = state.position = 0.0
    state.ruined = True
    return 0.0


def open_trade_mark(state):
    """The open trade as the backtest reports one at the end of data: (pnl, return_pct) marked
    to the last close without exit costs; None when flat."""
    trade = state.trade
    if trade is None:
        return None
    pnl = state.equity - trade["equity_before"]
    return pnl, pnl / trade["notional"] if trade["notional"] else 0.0


__all__ = ["Bar", "ClosedTrade", "Costs", "Fill", "Point", "State", "StepResult", "open_trade_mark", "step"]
