"""Where the paper engine's orders go: the ``Broker`` protocol and the one broker shipped.

The engine (graduation.trading.engine) decides and sizes orders; a broker executes them and
reports fills. Paper accounts and live accounts run the same engine; they differ only in the
broker behind them. **The only broker shipped is ``SimulatedBroker``: it fills every order
itself, at the bar's open (or the stop level) with the agent's slippage and fee, and sends
nothing to any exchange. "Live trading" in this lab is therefore simulated trading on the
live feed; connecting a real broker means writing another class with this protocol.**
"""

from typing import NamedTuple, Protocol


class Order(NamedTuple):
    timestamp: object  # the bar it executes on (aware datetime)
    quantity: float  # signed units: > 0 buys, < 0 sells
    reference_price: float  # the bar's open, or the stop / take-profit level
    reason: str  # signal | stop_loss | take_profit
    weight_after: float  # the target weight this order establishes


class Fill(NamedTuple):
    timestamp: object
    side: str  # buy | sell
    quantity: float  # units, positive
    price: float  # slippage included
    reference_price: float
    fee: float
    reason: str
    weight_after: float

    @property
    def signed_quantity(self):
        return self.quantity if self.side == "buy" else -self.quantity

    @property
    def cash_change(self):
        """What the fill does to cash: minus the signed notional at the fill price, minus the fee."""
        return -self.signed_quantity * self.price - self.fee


class Broker(Protocol):
    def submit_order(self, order: Order) -> Fill:
        """Execute the order; returns its fill (a market order fills completely)."""
        ...

    def positions(self) -> dict[str, float]:
        """Signed units held per symbol."""
        ...


class SimulatedBroker:
    """Fills at the reference price moved against the trade by the slippage (buys at
    ``ref x (1 + s)``, sells at ``ref x (1 - s)``, ``s = slippage_bps / 1e4``) and charges
    ``fee_bps / 1e4`` of ``|units| x ref``: the backtest engine's cost model, per fill."""

    def __init__(self, symbol, *, fee_bps, slippage_bps, units=0.0):
        self.symbol = symbol
        self.fee = fee_bps / 1e4
        self.slip = slippage_bps / 1e4
        self._units = float(units)

    def submit_order(self, order: Order) -> Fill:
        q = float(order.quantity)
        if q == 0 or order.reference_price <= 0:
            raise ValueError(f"cannot fill {q} units at {order.reference_price}")
        buy = q > 0
        price = order.reference_price * (1.0 + self.slip if buy else 1.0 - self.slip)
        fee = self.fee * abs(q) * order.reference_price
        self._units += q
        return Fill(order.timestamp, "buy" if buy else "sell", abs(q), price, order.reference_price, fee,
                    order.reason, order.weight_after)

    def positions(self) -> dict[str, float]:
        return {self.symbol: self._units}


def broker_for(account, symbol):
    """The broker behind an account: the simulator for paper and, as shipped, for live too."""
    return SimulatedBroker(symbol, fee_bps=account.fee_bps, slippage_bps=account.slippage_bps, units=account.units)
