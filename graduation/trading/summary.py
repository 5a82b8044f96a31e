"""What the API and the console show of an agent's paper account."""

from graduation.models import AccountRole, PaperAccount
from graduation.trading.accounts import state_of
from graduation.trading.engine import open_trade_mark
from graduation.trading.metrics import account_metrics

DEFAULT_POINTS, MAX_POINTS = 500, 5000
DEFAULT_FILLS, MAX_FILLS = 50, 500


def latest_account(agent, role=AccountRole.CHAMPION):
    """The open account of ``role``, else the most recently closed one, else None."""
    qs = PaperAccount.objects.filter(agent=agent, role=role).select_related("version", "agent__instrument")
    return qs.filter(closed_at__isnull=True).first() or qs.order_by("-opened_at", "-id").first()


def paper_summary(agent, *, points=DEFAULT_POINTS, fills=DEFAULT_FILLS, role=AccountRole.CHAMPION):
    account = latest_account(agent, role)
    if account is None:
        return {"account": None, "metrics": {}, "open_trade": None, "fills": [], "trades": [], "equity": []}
    points = max(1, min(int(points), MAX_POINTS))
    fills = max(1, min(int(fills), MAX_FILLS))
    state = state_of(account)
    mark = open_trade_mark(state)
    open_trade = None
    if mark is not None:
        trade = state.trade
        open_trade = {"side": "long" if trade["side"] > 0 else "short", "entry_time": trade["entry_time"].isoformat(),
                      "entry_price": trade["entry_price"], "quantity": trade["quantity"], "bars_held": trade["bars"],
                      "unrealised_pnl": mark[0], "return_pct": mark[1]}
    equity = list(account.equity_points.order_by("-timestamp")[:points])[::-1]
    return {
        "account": account,
        "metrics": account_metrics(account),
        "open_trade": open_trade,
        "fills": list(account.fills.order_by("-timestamp", "-id")[:fills]),
        "trades": list(account.trades.order_by("-exit_time", "-id")[:fills]),
        "equity": equity,
    }
