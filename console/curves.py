"""The curves the agent page draws: backtest equity against buy-and-hold, the learning record,
paper equity. Each returns the chart's SVG plus the few numbers shown beside it.

Equity: the current version backtested on the sealed test window exactly as an iteration does
(agents.services.evaluation: the target positions over the whole history, then the window alone,
starting flat, with the agent's costs). Buy-and-hold buys at bar 1's open of the window and holds
to the last close, without costs: the benchmark of ``buy_hold_return`` (agents.backtest.metrics).
"""

import datetime as dt
import logging

import numpy as np

from agents.backtest.engine import run_backtest
from agents.evaluation.protocol import EvaluationError, split_protocol
from agents.market.cache import load_bars
from agents.strategies.registry import get_template
from console.charts import Series, line_chart
from graduation.challenger import paired_returns

logger = logging.getLogger(__name__)


def to_datetimes(stamps):
    """numpy datetime64 values as aware UTC datetimes."""
    seconds = np.asarray(stamps, dtype="datetime64[s]").astype(np.int64)
    return [dt.datetime.fromtimestamp(int(s), tz=dt.UTC) for s in seconds]


def validation_equity(agent):
    """{"svg", "window", "strategy_return", "buy_hold_return", "note"} for the current version."""
    version = agent.current_version
    if version is None:
        return {"svg": None, "note": "The agent has no version yet."}
    try:
        bars = load_bars(agent.instrument_id)
        protocol = split_protocol(len(bars), test_fraction=agent.test_fraction, n_folds=agent.n_folds)
        template = get_template(agent.strategy_template)
        params = template.validate(version.params)
        target = template.target_positions(bars, params)
        window = protocol.test
        w_bars = bars.slice(window.start, window.stop)
        result = run_backtest(
            w_bars, target[window], fee_bps=agent.fee_bps, slippage_bps=agent.slippage_bps,
            bars_per_year=agent.instrument.bars_per_year, stop_loss=params.get("stop_loss", 0.0),
            take_profit=params.get("take_profit", 0.0), initial_capital=agent.initial_capital,
        )
    except (EvaluationError, ValueError, LookupError) as exc:
        return {"svg": None, "note": f"No equity curve: {exc}"}
    dates = to_datetimes(w_bars.timestamps)
    capital = float(agent.initial_capital)
    hold = np.empty(len(w_bars))
    hold[0] = capital
    if len(w_bars) > 1:
        hold[1:] = capital * w_bars.close[1:] / w_bars.open[1]
    svg = line_chart(
        [Series(f"v{version.number}", dates, result.equity.tolist()),
         Series("buy and hold", dates, hold.tolist(), dashed=True)],
        title=f"Equity of v{version.number} vs buy-and-hold on the sealed test window", y_format="money",
        y_label="equity",
    )
    return {
        "svg": svg,
        "window": {"start": dates[0], "end": dates[-1], "bars": len(dates)},
        "metrics": result.metrics,
        "note": "",
    }


def learning_record(performance):
    """Charts of the objective and the win rate per succeeded iteration (agent_performance)."""
    series = performance["series"]
    numbers = [row["iteration"] for row in series]
    objective = performance["objective"]
    half = {"width": 560, "height": 240}
    score = line_chart(
        [Series(f"score ({objective})", numbers, [row["score"] for row in series], markers=len(series) <= 60),
         Series("best candidate", numbers, [row["best_candidate_score"] for row in series], dashed=True)],
        title=f"Validation {objective} per iteration", x_kind="number", y_label=objective, x_label="iteration",
        empty="no succeeded iteration yet.", **half,
    )
    win_rate = line_chart(
        [Series("win rate", numbers, [row["win_rate"] for row in series], color="#3a8f55",
                markers=len(series) <= 60)],
        title="Validation win rate per iteration", x_kind="number", y_format="percent", y_label="win rate",
        x_label="iteration", empty="no succeeded iteration yet.", **half,
    )
    return {"score_svg": score, "win_rate_svg": win_rate}


def paper_equity(account, points):
    """The paper (or live) account's equity per bar, against buying and holding from its first bar."""
    if account is None or len(points) < 2:
        return None  # the opening point alone is no curve
    dates = [p.timestamp for p in points]
    equity = [p.equity for p in points]
    series = [Series("live equity" if account.live else "paper equity", dates, equity)]
    try:
        bars = load_bars(account.agent.instrument_id)
        stamps = np.array([np.datetime64(d.astimezone(dt.UTC).replace(tzinfo=None), "ns") for d in dates])
        index = np.searchsorted(bars.timestamps, stamps)
        if len(index) and index[-1] < len(bars) and np.array_equal(bars.timestamps[index], stamps):
            close = bars.close[index]
            series.append(Series("buy and hold", dates, (equity[0] * close / close[0]).tolist(), dashed=True))
    except Exception:  # the benchmark is a nicety; the account's own curve is what matters
        logger.exception("paper chart: no buy-and-hold line for account %s", account.pk)
    return line_chart(series, title="Paper account equity" if not account.live else "Live account equity",
                      y_format="money", y_label="equity", width=560, height=240)


def champion_challenger_equity(champion, shadow):
    """Both accounts' equity since the shadow opened, each rebased to 100 on that bar: the two
    records the paired test compares (graduation.challenger.paired_returns)."""
    if champion is None or shadow is None:
        return None
    stamps, _ours, _theirs = paired_returns(champion, shadow)
    if len(stamps) < 2:
        return None
    series = []
    for label, account in ((f"champion v{champion.version.number}", champion),
                           (f"challenger v{shadow.version.number}", shadow)):
        equity = dict(account.equity_points.filter(timestamp__in=stamps).values_list("timestamp", "equity"))
        base = equity[stamps[0]]
        series.append(Series(label, stamps, [100.0 * equity[t] / base if base > 0 else None for t in stamps],
                             dashed=account is shadow))
    return line_chart(series, title="Champion and challenger since the shadow opened (100 = its first bar)",
                      y_format="number", y_label="growth of 100", width=560, height=240)
