"""Standings on crafted data, the tournament-wide statistics checked against formulas written out
here with numpy and scipy (Bailey & López de Prado 2014 for the DSR, Jobson & Korkie / Memmel for
the paired test), never against the code's own statistics."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from agents.backtest.engine import run_backtest
from agents.market.cache import load_bars
from agents.models import ExamPurpose, ExamReading, IterationStatus, IterationTrigger, LearningIteration, Refinement
from agents.services.learning import iteration_run_now
from agents.strategies.registry import get_template
from graduation.trading.accounts import to_datetime64
from tests.graduation.helpers import append_bars
from tests.tournaments.helpers import entrants, forward_record, tournament_of
from tournaments.models import TournamentStanding
from tournaments.services.standings import standings_recompute

pytestmark = pytest.mark.django_db
GAMMA = 0.5772156649015329


def window_returns(agent, tournament):
    """The agent's current version on the common window, from the engine directly."""
    bars = load_bars(agent.instrument_id)
    template = get_template(agent.strategy_template)
    params = template.validate(agent.current_version.params)
    start = int(np.searchsorted(bars.timestamps, to_datetime64(tournament.window_start)))
    stop = int(np.searchsorted(bars.timestamps, to_datetime64(tournament.window_end), side="right"))
    target = template.target_positions(bars, params)
    result = run_backtest(bars.slice(start, stop), target[start:stop], fee_bps=agent.fee_bps,
                          slippage_bps=agent.slippage_bps, bars_per_year=agent.instrument.bars_per_year,
                          stop_loss=params.get("stop_loss", 0.0), take_profit=params.get("take_profit", 0.0),
                          initial_capital=agent.initial_capital)
    return result.returns[1:], bars.timestamps[start + 1:stop]


def distinct_trials(agents):
    """{(template, instrument, params): selection Sharpe or None}, read from the rows directly."""
    out = {}
    for agent in agents:
        template = get_template(agent.strategy_template)
        rows = [(r.proposed_params, r.selection_sharpe) for r in Refinement.objects.filter(agent=agent)]
        rows += [(i.version.params, i.selection_sharpe) for i in LearningIteration.objects.filter(
            agent=agent, status=IterationStatus.SUCCEEDED, version__isnull=False)]
        rows.append((agent.current_version.params, None))  # the traded version is one of the strategies
        for params, sharpe in rows:
            key = (template.name, agent.instrument_id, json.dumps(template.validate(params), sort_keys=True))
            if out.get(key) is None:
                out[key] = sharpe
    return out


def reference_dsr(returns, n_trials, variance):
    t = len(returns)
    sr = returns.mean() / returns.std(ddof=1)
    g3 = sps.skew(returns, bias=True)
    g4 = sps.kurtosis(returns, fisher=False, bias=True)
    sr0 = math.sqrt(variance) * ((1 - GAMMA) * sps.norm.ppf(1 - 1 / n_trials)
                                 + GAMMA * sps.norm.ppf(1 - 1 / (n_trials * math.e)))
    return sps.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr * sr))


def reference_paired_p(a, b):
    t = len(a)
    sa, sb = a.mean() / a.std(ddof=1), b.mean() / b.std(ddof=1)
    rho = np.corrcoef(a, b)[0, 1]
    theta = (2 - 2 * rho + 0.5 * (sa * sa + sb * sb - 2 * sa * sb * rho * rho)) / t
    return sps.norm.sf((sa - sb) / math.sqrt(theta))


@pytest.fixture
def cup(notified):
    owner, agents = entrants()
    for agent in agents:  # trials to deflate over
        iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    for agent in agents:
        agent.refresh_from_db()
    return owner, agents, tournament_of(owner, agents)


def test_rank_figures_and_deflation_match_an_independent_computation(cup):
    _owner, agents, tournament = cup
    tournament = standings_recompute(tournament.pk)
    series = {a.pk: window_returns(a, tournament) for a in agents}
    sharpe = {pk: r.mean() / r.std(ddof=1) for pk, (r, _ts) in series.items()}
    rows = list(TournamentStanding.objects.filter(tournament=tournament).order_by("rank"))
    assert [row.agent_id for row in rows] == sorted(sharpe, key=lambda pk: -sharpe[pk])
    for row in rows:
        returns = series[row.agent_id][0]
        equity = np.cumprod(1 + returns)
        assert row.score == pytest.approx(sharpe[row.agent_id], rel=1e-9)
        assert row.window["bars"] == len(returns)
        assert row.window["total_return"] == pytest.approx(equity[-1] - 1, rel=1e-9)
        drawdown = np.max(1 - np.concatenate([[1], equity]) / np.maximum.accumulate(np.concatenate([[1], equity])))
        assert row.window["max_drawdown"] == pytest.approx(drawdown, rel=1e-9, abs=1e-12)
        assert row.window["still_sealed"] is True
        assert row.forward["trading"] is False and row.forward["bars"] == 0
        assert row.equity[0] == 1.0 and row.equity[-1] == pytest.approx(equity[-1], rel=1e-5)

    # N: the distinct trials of all entrants together; the two SMAs on TOURA share the sets both tried.
    trials = distinct_trials(agents)
    per_agent = sum(len(distinct_trials([a])) for a in agents)
    assert len(trials) < per_agent
    summary = tournament.summary
    assert summary["n_trials"] == len(trials)
    leader_returns = series[rows[0].agent_id][0]
    known = np.array([s for s in trials.values() if s is not None])
    variance = min(known.var(ddof=1), 1 / (len(leader_returns) - 1))
    assert summary["trials_variance"] == pytest.approx(variance, rel=1e-9)
    assert summary["deflated_sharpe"] == pytest.approx(reference_dsr(leader_returns, len(trials), variance), rel=1e-7)

    # p(edge is noise): the paired test of the leader against the runner-up on their common bars.
    (ra, ta), (rb, tb) = series[rows[0].agent_id], series[rows[1].agent_id]
    by_time = dict(zip(tb.tolist(), rb, strict=True))
    common = [(x, by_time[t]) for t, x in zip(ta.tolist(), ra, strict=True) if t in by_time]
    a, b = (np.array(col) for col in zip(*common, strict=True))
    assert summary["edge"]["common_bars"] == len(a)
    assert summary["edge"]["p_value"] == pytest.approx(reference_paired_p(a, b), rel=1e-7)
    assert tournament.leader_id == rows[0].agent_id


def test_reading_the_window_is_recorded_once_per_version_and_window(cup):
    _owner, agents, tournament = cup
    standings_recompute(tournament.pk)
    standings_recompute(tournament.pk)
    readings = ExamReading.objects.filter(purpose=ExamPurpose.TOURNAMENT)
    assert readings.count() == len(agents)
    reading = readings.get(agent=agents[0])
    assert reading.window_start == tournament.window_start and reading.window_end == tournament.window_end


def test_a_long_forward_record_joins_the_evidence_and_a_short_one_does_not(cup):
    _owner, agents, tournament = cup
    entry = tournament.entries.get(agent=agents[2])
    rng = np.random.default_rng(5)
    forward = rng.normal(0.004, 0.01, 30)
    forward_record(agents[2], forward, after=entry.forward_from)
    standings_recompute(tournament.pk)
    row = TournamentStanding.objects.get(tournament=tournament, agent=agents[2])
    window, _ts = window_returns(agents[2], tournament)
    pooled = np.concatenate([window, forward])
    assert row.forward["bars"] == 30 and row.forward["used_in_score"] is True
    assert row.forward["sharpe"] == pytest.approx(forward.mean() / forward.std(ddof=1), rel=1e-6)
    assert row.score == pytest.approx(pooled.mean() / pooled.std(ddof=1), rel=1e-6)

    short = tournament.entries.get(agent=agents[1])
    forward_record(agents[1], forward[:10], after=short.forward_from)
    standings_recompute(tournament.pk)
    row = TournamentStanding.objects.get(tournament=tournament, agent=agents[1])
    window, _ts = window_returns(agents[1], tournament)
    assert row.forward["bars"] == 10 and row.forward["used_in_score"] is False
    assert row.score == pytest.approx(window.mean() / window.std(ddof=1), rel=1e-9)


def test_newer_bars_that_move_an_entrants_sealed_window_past_the_common_window_are_flagged(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    # 400 bars, 80 sealed: 100 more bars make the sealed window the newest 100 of 500, after the common one.
    append_bars(agents[2].instrument, 100)
    standings_recompute(tournament.pk)
    rows = {row.agent_id: row for row in TournamentStanding.objects.filter(tournament=tournament)}
    assert rows[agents[2].pk].window["still_sealed"] is False
    assert rows[agents[0].pk].window["still_sealed"] is True
    assert rows[agents[2].pk].window["bars"] == 79  # still scored on the common window's bars only
