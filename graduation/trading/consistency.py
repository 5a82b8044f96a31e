"""Paper <-> backtest consistency: replay a paper account's period through ``run_backtest``.

The backtest is run on the bars the account processed (from its opening bar to its last one)
with the targets the account decided on each of them, its costs and its initial capital. The
report compares, bar by bar and fill by fill:

- equity: the largest relative gap |paper - backtest| / backtest over the curve;
- the weight in force on each bar (the backtest's ``positions``);
- fills: (bar, weight after, reason) of every fill (a flip is a close and an open);
- trades: entry and exit bars, exit reasons, fill prices (relative gap) and P&L (gap relative to
  the initial capital) of every closed trade;
- decisions: the stored targets against the template run once over the whole history up to the
  last bar; a difference means a decision depended on later bars (look-ahead) or on rounding.
  Not checked when the traded version was re-pinned during the period.

``ok`` when every gap is within ``tolerance`` (1e-9 relative) and nothing is mismatched.
"""

import numpy as np

from agents.backtest.engine import EXIT_REASONS, run_backtest
from agents.market.cache import load_bars
from agents.strategies.registry import get_template
from graduation.models import AccountRole, EventKind, GraduationEvent, PaperFill, PaperTrade
from graduation.trading.accounts import to_datetime, to_datetime64, version_costs
from graduation.trading.metrics import curve

TOLERANCE = 1e-9
_SHOWN = 10


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def backtest_fills(result):
    """[(bar index, weight after, reason)] of the backtest's fills, as the paper engine records them."""
    pos = result.positions
    stops = {}
    for table_row in zip(result.trade_table.exit_index.tolist(), result.trade_table.exit_reason.tolist(), strict=True):
        reason = EXIT_REASONS[table_row[1]]
        if reason in ("stop_loss", "take_profit"):
            stops[table_row[0]] = reason
    fills = []
    for t in range(1, len(pos)):
        held = 0.0 if (t - 1) in stops else float(pos[t - 1])
        now = float(pos[t])
        if now != held:
            if now * held < 0:
                fills.append((t, 0.0, "signal"))
            fills.append((t, now, "signal"))
        if t in stops:
            fills.append((t, 0.0, stops[t]))
    return fills


def consistency_report(account, tolerance=TOLERANCE):
    agent = account.agent
    stamps, equity, positions, targets = curve(account)
    report = {"account": account.pk, "agent": str(agent.pk), "live": account.live, "role": account.role,
              "bars": len(stamps), "tolerance": tolerance, "problems": []}
    if len(stamps) < 2 or account.version is None:
        report.update(ok=True, note="nothing traded yet")
        return report
    bars = load_bars(agent.instrument_id)
    start = int(np.searchsorted(bars.timestamps, to_datetime64(stamps[0])))
    window = bars.slice(start, start + len(stamps))
    wanted = np.array([to_datetime64(s) for s in stamps], dtype="datetime64[ns]")
    if len(window) != len(stamps) or not np.array_equal(window.timestamps, wanted):
        report.update(ok=False, problems=["the instrument's bars in the paper period changed since they were traded"])
        return report
    params, costs = version_costs(account, agent.strategy_template, account.version.params)
    result = run_backtest(
        window, targets, fee_bps=account.fee_bps, slippage_bps=account.slippage_bps,
        bars_per_year=agent.instrument.bars_per_year, stop_loss=costs.stop_loss, take_profit=costs.take_profit,
        initial_capital=account.initial_capital,
    )
    gaps = np.abs(equity - result.equity) / np.maximum(np.abs(result.equity), 1e-12)
    report["equity_max_rel_gap"] = float(gaps.max())
    report["final_equity"] = {"paper": float(equity[-1]), "backtest": float(result.equity[-1])}
    bad_pos = np.flatnonzero(positions != result.positions)
    report["positions_mismatched"] = len(bad_pos)
    _compare_fills(account, result, stamps, report)
    _compare_trades(account, result, stamps, tolerance, report)
    report["decisions_mismatched"] = _compare_decisions(account, agent, bars, start, targets, params)
    if report["equity_max_rel_gap"] > tolerance:
        report["problems"].append(f"equity differs by up to {report['equity_max_rel_gap']:.3g} (relative)")
    if len(bad_pos):
        report["problems"].append(f"the weight in force differs on {len(bad_pos)} bar(s), first "
                                  f"{to_datetime(window.timestamps[bad_pos[0]]).isoformat()}")
    if report["decisions_mismatched"]:
        report["problems"].append(f"{report['decisions_mismatched']} decision(s) differ from the template run on the "
                                  "whole history (look-ahead or rounding)")
    report["ok"] = not report["problems"]
    return report


def _compare_fills(account, result, stamps, report):
    index = {s: i for i, s in enumerate(stamps)}
    paper = [
        (index.get(ts, -1), weight, reason)
        for ts, weight, reason in PaperFill.objects.filter(account=account).order_by("timestamp", "id")
        .values_list("timestamp", "weight_after", "reason")
    ]
    expected = backtest_fills(result)
    mismatched = [
        {"paper": p, "backtest": b} for p, b in zip(paper, expected, strict=False) if p != b
    ]
    report["fills"] = {"paper": len(paper), "backtest": len(expected), "mismatched": mismatched[:_SHOWN]}
    if len(paper) != len(expected) or mismatched:
        report["problems"].append(f"fills differ: {len(paper)} on paper, {len(expected)} in the backtest, "
                                  f"{len(mismatched)} mismatched")


def _compare_trades(account, result, stamps, tolerance, report):
    index = {s: i for i, s in enumerate(stamps)}
    paper = list(
        PaperTrade.objects.filter(account=account).order_by("exit_time", "id")
        .values_list("entry_time", "exit_time", "entry_price", "exit_price", "pnl", "exit_reason")
    )
    expected = [t for t in result.trades if t.exit_reason != "end_of_data"]
    worst, mismatched = 0.0, []
    for p, b in zip(paper, expected, strict=False):
        same_bars = (index.get(p[0]), index.get(p[1]), p[5]) == (b.entry_index, b.exit_index, b.exit_reason)
        gap = max(_rel(p[2], b.entry_price), _rel(p[3], b.exit_price), abs(p[4] - b.pnl) / account.initial_capital)
        worst = max(worst, gap)
        if not same_bars or gap > tolerance:
            mismatched.append({"paper": [str(p[0]), str(p[1]), p[2], p[3], p[4], p[5]],
                               "backtest": [b.entry_time.isoformat(), b.exit_time.isoformat(), b.entry_price,
                                            b.exit_price, b.pnl, b.exit_reason]})
    report["trades"] = {"paper": len(paper), "backtest": len(expected), "max_rel_gap": worst,
                        "mismatched": mismatched[:_SHOWN]}
    if len(paper) != len(expected) or mismatched:
        report["problems"].append(f"closed trades differ: {len(paper)} on paper, {len(expected)} in the backtest, "
                                  f"{len(mismatched)} mismatched")


def _compare_decisions(account, agent, bars, start, targets, params):
    # A shadow's version never changes (a new challenger is a new account); a champion's may.
    repinned = account.role != AccountRole.CHALLENGER and GraduationEvent.objects.filter(
        agent=agent, kind=EventKind.REPIN, created_at__gte=account.opened_at
    ).exists()
    if repinned:
        return None
    full = get_template(agent.strategy_template).target_positions(bars.slice(0, start + len(targets)), params)
    return int(np.count_nonzero(full[start:] != targets))
