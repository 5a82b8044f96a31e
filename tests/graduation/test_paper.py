"""Paper trading: fills on appended bars, the backtest <-> paper equality, bounded queries, the feed."""

import io

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.backtest.engine import run_backtest
from agents.market.cache import load_bars
from agents.market.models import Instrument, PriceBar
from agents.market.samples import get_sample_dataset, load_sample_datasets
from agents.strategies.registry import get_template
from graduation.models import PaperAccount, PaperEquityPoint, PaperFill, PaperTrade, ReplayCursor
from graduation.trading import feed
from graduation.trading.accounts import to_datetime64
from graduation.trading.consistency import consistency_report
from graduation.trading.metrics import account_metrics
from graduation.trading.runner import paper_tick
from tests.factories import InstrumentFactory, random_walk_bars
from tests.graduation.helpers import append_bars, paper_agent

pytestmark = pytest.mark.django_db

FAST = {"fast": 3, "slow": 8}
# Never demoted by drawdown in these tests: they are about accounting.
NO_LIMIT = {"max_drawdown": 1.0}


def account_of(agent):
    return PaperAccount.objects.get(agent=agent, closed_at__isnull=True)


def window_of(account):
    """The bars the account processed (its opening bar first) and its stored decisions."""
    points = list(PaperEquityPoint.objects.filter(account=account).order_by("timestamp"))
    bars = load_bars(account.agent.instrument_id)
    start = int(np.searchsorted(bars.timestamps, to_datetime64(points[0].timestamp)))
    return bars, start, points


def test_account_opens_flat_on_the_newest_bar_with_the_pinned_version():
    agent = paper_agent(params=FAST, initial_capital=50_000)
    account = account_of(agent)
    newest = PriceBar.objects.filter(instrument=agent.instrument).order_by("-timestamp").first()
    assert account.version_id == agent.current_version_id
    assert (account.cash, account.equity, account.units, account.position) == (50_000, 50_000, 0, 0)
    assert account.opened_bar_timestamp == account.last_bar_timestamp == newest.timestamp
    bars = load_bars(agent.instrument_id)
    expected = get_template("sma_crossover").target_positions(bars, agent.current_version.params)[-1]
    assert account.pending_target == expected


def test_fills_on_appended_bars_at_the_next_open_with_fees_and_slippage():
    agent = paper_agent({**NO_LIMIT}, params=FAST, fee_bps=5, slippage_bps=10)
    append_bars(agent.instrument, 60, seed=3)
    summary = paper_tick()
    assert summary["accounts"] == 1 and summary["bars"] == 60 and summary["errors"] == 0

    account = account_of(agent)
    bars, start, points = window_of(account)
    assert account.bars_processed == 60 and len(points) == 61
    assert account.last_bar_timestamp == points[-1].timestamp
    # Each decision uses bars up to its own bar only (here equal to the full-history run).
    full = get_template("sma_crossover").target_positions(bars, agent.current_version.params)
    assert [p.target for p in points] == full[start:].tolist()

    fills = list(PaperFill.objects.filter(account=account).order_by("timestamp", "id"))
    assert fills, "a 3/8 SMA crossover trades on 60 random bars"
    index = {p.timestamp: i for i, p in enumerate(points)}
    for fill in fills:
        i = index[fill.timestamp]
        assert i >= 1 and fill.reason == "signal"
        # Decided on the previous bar's close, filled at this bar's open.
        assert fill.weight_after == points[i - 1].target
        assert points[i].position == fill.weight_after
        bar_open = float(bars.open[start + i])
        assert fill.reference_price == bar_open
        expected_price = bar_open * (1 + 0.001) if fill.side == "buy" else bar_open * (1 - 0.001)
        assert fill.price == pytest.approx(expected_price, rel=1e-12)
        assert fill.fee == pytest.approx(0.0005 * fill.quantity * bar_open, rel=1e-12)
    # No fill on a bar whose previous decision did not change the weight.
    changes = [points[i].timestamp for i in range(1, len(points)) if points[i - 1].target != points[i - 1].position]
    assert sorted({f.timestamp for f in fills}) == changes
    # Equity is cash + units x close.
    assert account.equity == pytest.approx(account.cash + account.units * float(bars.close[-1]), rel=1e-12)
    assert account.fees_paid == pytest.approx(sum(f.fee for f in fills), rel=1e-12)


def test_a_second_tick_with_no_new_bar_does_nothing_and_the_next_bars_continue():
    agent = paper_agent(NO_LIMIT, params=FAST)
    append_bars(agent.instrument, 10, seed=1)
    paper_tick()
    before = account_of(agent)
    assert paper_tick()["bars"] == 0
    assert account_of(agent).revision == before.revision
    append_bars(agent.instrument, 5, seed=2)
    assert paper_tick()["bars"] == 5
    assert account_of(agent).bars_processed == 15


@pytest.mark.parametrize(
    "params, costs",
    [
        (FAST, {"fee_bps": 1, "slippage_bps": 1}),
        ({**FAST, "long_only": False}, {"fee_bps": 10, "slippage_bps": 25}),
        ({**FAST, "long_only": False, "stop_loss": 0.02, "take_profit": 0.03}, {"fee_bps": 5, "slippage_bps": 5}),
        ({"fast": 5, "slow": 12, "stop_loss": 0.01}, {"fee_bps": 0, "slippage_bps": 0}),
    ],
    ids=["long-only", "long-short-costly", "stops-and-targets", "tight-stop-no-costs"],
)
def test_paper_equals_the_backtest_on_the_same_bars(params, costs):
    agent = paper_agent(NO_LIMIT, params=params, **costs)
    # Several ticks of different sizes: the state carried between ticks must not matter.
    for n, seed in ((7, 11), (1, 12), (90, 13), (33, 14), (69, 15)):
        append_bars(agent.instrument, n, seed=seed, vol=0.025)
        paper_tick()
    account = account_of(agent)
    assert account.bars_processed == 200
    bars, start, points = window_of(account)
    window = bars.slice(start, start + len(points))
    # The decisions re-derived independently: the template over the whole history.
    target = get_template(agent.strategy_template).target_positions(bars, params)[start:]
    clean = get_template(agent.strategy_template).validate(params)
    result = run_backtest(window, target, fee_bps=costs["fee_bps"], slippage_bps=costs["slippage_bps"],
                          bars_per_year=252, stop_loss=clean["stop_loss"], take_profit=clean["take_profit"],
                          initial_capital=agent.initial_capital)

    equity = np.array([p.equity for p in points])
    np.testing.assert_allclose(equity, result.equity, rtol=1e-9, atol=0)
    assert [p.position for p in points] == result.positions.tolist()
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    paper_trades = list(PaperTrade.objects.filter(account=account).order_by("exit_time", "id"))
    assert len(paper_trades) == len(closed) == account.closed_trades
    assert len(closed) >= 5
    for p, b in zip(paper_trades, closed, strict=True):
        assert (p.side, p.entry_time, p.exit_time, p.exit_reason, p.bars_held) == (
            b.side, b.entry_time, b.exit_time, b.exit_reason, b.bars_held)
        assert p.entry_price == pytest.approx(b.entry_price, rel=1e-12)
        assert p.exit_price == pytest.approx(b.exit_price, rel=1e-12)
        assert p.pnl == pytest.approx(b.pnl, rel=1e-9, abs=1e-6)
        assert p.return_pct == pytest.approx(b.return_pct, rel=1e-9, abs=1e-12)
    if "stop_loss" in params:
        assert any(t.exit_reason in ("stop_loss", "take_profit") for t in paper_trades)

    # Paper metrics are the backtest's metric functions on the same curve.
    metrics = account_metrics(account)
    for key, value in result.metrics.items():
        assert metrics[key] == pytest.approx(value, rel=1e-7, abs=1e-9), key

    report = consistency_report(account)
    assert report["ok"], report["problems"]
    assert report["equity_max_rel_gap"] < 1e-9
    assert report["fills"]["paper"] == report["fills"]["backtest"] == PaperFill.objects.filter(account=account).count()
    assert report["decisions_mismatched"] == 0


def test_consistency_report_catches_a_tampered_ledger_and_the_command_reports_it():
    agent = paper_agent(NO_LIMIT, params=FAST)
    append_bars(agent.instrument, 80, seed=5)
    paper_tick()
    out = io.StringIO()
    call_command("paper_consistency", agent.name, stdout=out)
    assert "consistent within 1e-09" in out.getvalue()

    account = account_of(agent)
    point = PaperEquityPoint.objects.filter(account=account).order_by("-timestamp").first()
    PaperEquityPoint.objects.filter(pk=point.pk).update(equity=point.equity * 1.001)
    report = consistency_report(account)
    assert not report["ok"] and report["equity_max_rel_gap"] == pytest.approx(0.001, rel=1e-3)
    with pytest.raises(SystemExit):
        call_command("paper_consistency", str(agent.pk), stdout=io.StringIO())


def test_queries_per_account_do_not_grow_with_the_number_of_bars():
    # Never eligible for live (a paper PSR of 1 is out of reach), so every tick takes the same path
    # through the checks, the paper PSR and minimum track record included.
    agent = paper_agent(NO_LIMIT, params=FAST)
    agent.graduation_criteria = {**agent.graduation_criteria, "min_paper_psr": 1.0}
    agent.save(update_fields=["graduation_criteria"])

    def tick_queries(n, seed):
        append_bars(agent.instrument, n, seed=seed)
        with CaptureQueriesContext(connection) as ctx:
            summary = paper_tick()
        assert summary["bars"] == n and summary["trades"] > 0
        return len(ctx.captured_queries)

    tick_queries(80, 1)  # past LAB_PAPER_MIN_BARS and _TRADES: every check below runs in full
    few, many = tick_queries(40, 2), tick_queries(150, 3)
    assert many == few <= 20


def test_the_only_broker_is_the_simulator():
    import graduation.trading.broker as broker_module

    agent = paper_agent(NO_LIMIT, params=FAST)
    assert isinstance(broker_module.broker_for(account_of(agent), "X"), broker_module.SimulatedBroker)


# --- the replay feed -----------------------------------------------------------------------------------
@pytest.fixture
def btc(settings):
    settings.LAB_REPLAY_ENABLED = True
    feed._bundled_bars.cache_clear()
    load_sample_datasets(["BTCUSD"])
    return Instrument.objects.get(symbol="BTCUSD")


def test_replay_holds_back_the_newest_bars_and_releases_them_through_the_importer(btc, settings):
    dataset = get_sample_dataset("BTCUSD")
    version = btc.data_version
    lines = feed.replay_setup(["BTCUSD"], hold_back=20)
    assert "holding back 20 bars" in lines[0]
    assert PriceBar.objects.filter(instrument=btc).count() == dataset.bars - 20
    btc.refresh_from_db()
    assert btc.data_version > version
    cursor = ReplayCursor.objects.get(instrument=btc)
    assert (cursor.total, cursor.released) == (20, 0)

    bundled = feed._bundled_bars("BTCUSD")
    assert feed.replay_tick(per_tick=3) == {"BTCUSD": 3}
    stored = list(PriceBar.objects.filter(instrument=btc).order_by("-timestamp")[:3])[::-1]
    for row, original in zip(stored, bundled[-20:-17], strict=True):
        assert (row.timestamp, row.open, row.high, row.low, row.close, row.volume) == (
            original.timestamp, original.open, original.high, original.low, original.close, original.volume)
    while feed.replay_tick(per_tick=3):
        pass
    assert PriceBar.objects.filter(instrument=btc).count() == dataset.bars
    assert ReplayCursor.objects.get(instrument=btc).remaining == 0

    settings.LAB_REPLAY_ENABLED = False
    feed.replay_setup(["BTCUSD"], hold_back=5)
    assert feed.replay_tick() == {}  # disabled: the tick does nothing


def test_replay_setup_at_every_start_resumes_after_the_dataset_is_reloaded(btc):
    feed.replay_setup(["BTCUSD"], hold_back=20)
    feed.replay_tick(per_tick=8)
    released_until = PriceBar.objects.filter(instrument=btc).order_by("-timestamp").first().timestamp
    load_sample_datasets(["BTCUSD"])  # a restart reloads the whole file...
    assert PriceBar.objects.filter(instrument=btc).count() == get_sample_dataset("BTCUSD").bars
    lines = feed.replay_setup(["BTCUSD"], hold_back=20)  # ...and the replay resumes
    assert "resuming: 12 of 20 bars" in lines[0]
    assert PriceBar.objects.filter(instrument=btc).order_by("-timestamp").first().timestamp == released_until
    assert ReplayCursor.objects.get(instrument=btc).released == 8
    assert "holding back 20 bars" in feed.replay_setup(["BTCUSD"], hold_back=20, restart=True)[0]
    assert ReplayCursor.objects.get(instrument=btc).released == 0


def test_a_paper_agent_trades_replayed_bars_like_imported_ones(btc):
    feed.replay_setup(["BTCUSD"], hold_back=30)
    agent = paper_agent(NO_LIMIT, instrument=btc, params={"fast": 2, "slow": 4})
    for _ in range(10):
        feed.replay_tick(per_tick=3)
        paper_tick()
    account = account_of(agent)
    assert account.bars_processed == 30
    assert consistency_report(account)["ok"]


def test_replay_setup_command_refuses_when_the_replay_is_off(btc, settings):
    from django.core.management.base import CommandError

    settings.LAB_REPLAY_ENABLED = False
    with pytest.raises(CommandError, match="LAB_REPLAY_ENABLED"):
        call_command("replay_setup", "BTCUSD")
    out = io.StringIO()
    call_command("replay_setup", "BTCUSD", "--force", "--hold-back", "10", stdout=out)
    assert "holding back 10 bars" in out.getvalue()


def test_an_account_opened_before_any_bar_starts_on_the_first_bars_seen():
    instrument = InstrumentFactory()
    agent = paper_agent(NO_LIMIT, params=FAST, instrument=random_walk_bars(instrument, n=300))
    PaperAccount.objects.filter(agent=agent).update(last_bar_timestamp=None, opened_bar_timestamp=None)
    PaperEquityPoint.objects.filter(account__agent=agent).delete()
    paper_tick()
    account = account_of(agent)
    assert account.opened_bar_timestamp is not None and account.bars_processed == 0
    append_bars(instrument, 4)
    assert paper_tick()["bars"] == 4
