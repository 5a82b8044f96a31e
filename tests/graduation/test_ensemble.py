"""An ensemble graduates, paper-trades and is demoted like any agent, on its own evidence."""

import numpy as np
import pytest

from agents.backtest.engine import run_backtest
from agents.models import AgentStatus, IterationStatus, IterationTrigger, Refinement, StrategyVersion
from agents.services import decisions, learning
from agents.strategies.registry import get_template
from graduation import services
from graduation.eligibility import eligibility
from graduation.models import AccountRole, EventKind, GraduationEvent, PaperAccount, PaperEquityPoint
from graduation.trading.consistency import consistency_report
from graduation.trading.runner import paper_tick
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tests.graduation.helpers import append_bars, paper_agent
from tests.graduation.test_paper import account_of, window_of

pytestmark = pytest.mark.django_db

MEMBER_PARAMS = ({"fast": 3, "slow": 8, "long_only": False}, {"fast": 5, "slow": 20})


def ensemble_with_members(criteria=None, *, paper=False, member_params=MEMBER_PARAMS, **kwargs):
    owner = UserFactory()
    instrument = random_walk_bars(InstrumentFactory(), n=600, seed=9)
    members = [make_agent(owner=owner, instrument=instrument, params=p) for p in member_params]
    build = paper_agent if paper else (lambda _criteria, **kw: make_agent(**kw))
    agent = build(criteria, owner=owner, instrument=instrument, template="ensemble",
                  members=[str(m.pk) for m in members], **kwargs)
    return agent, members


def test_eligibility_reads_the_ensembles_own_iteration():
    agent, _members = ensemble_with_members()
    iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    result = eligibility(agent)
    rows = {row["criterion"]: row for row in result["criteria"]}
    assert result["target_status"] == AgentStatus.PAPER_TRADING
    assert rows["min_dsr"]["actual"] == pytest.approx(iteration.dsr)
    assert result["window"]["iterations"] == [iteration.number]
    assert result["window"]["version"] == agent.current_version_id


def test_paper_account_trades_the_average_of_the_members_targets():
    agent, members = ensemble_with_members({"max_drawdown": 1.0}, paper=True, fee_bps=2, slippage_bps=3,
                                           params={"stop_loss": 0.04})
    for n, seed in ((9, 21), (1, 22), (60, 23), (30, 24)):
        append_bars(agent.instrument, n, seed=seed, vol=0.025)
        paper_tick()
    account = account_of(agent)
    assert account.bars_processed == 100
    bars, start, points = window_of(account)
    # Independently: every member agent's own template and version over the whole history, averaged here.
    target = np.mean([get_template(m.strategy_template).target_positions(bars, m.current_version.params)
                      for m in members], axis=0)
    result = run_backtest(bars.slice(start, start + len(points)), target[start:], fee_bps=2, slippage_bps=3,
                          bars_per_year=252, stop_loss=0.04, take_profit=0.0, initial_capital=agent.initial_capital)
    np.testing.assert_allclose([p.equity for p in points], result.equity, rtol=1e-9, atol=0)
    assert [p.position for p in points] == result.positions.tolist()
    assert {0.5, -0.5} & {p.position for p in points}  # the members disagreed on some bars
    report = consistency_report(account)
    assert report["ok"], report["problems"]
    assert report["decisions_mismatched"] == 0


def test_an_ensemble_is_demoted_on_its_own_drawdown():
    agent, _members = ensemble_with_members({"max_drawdown": 0.1}, paper=True,
                                            member_params=({"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}))
    append_bars(agent.instrument, 40, seed=1, drift=0.01, vol=0.002)  # a steady rise: both members long
    paper_tick()
    assert account_of(agent).position == 1.0
    append_bars(agent.instrument, 6, seed=2, drift=-0.04, vol=0.002)  # a crash while long
    assert paper_tick()["demoted"] == 1
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    event = GraduationEvent.objects.get(agent=agent, kind=EventKind.DEMOTE)
    assert event.automatic and event.metrics_snapshot["trigger"] == "drawdown"


def test_a_person_demotes_an_ensemble():
    agent, _members = ensemble_with_members({"max_drawdown": 1.0}, paper=True)
    assert agent.status == AgentStatus.PAPER_TRADING
    append_bars(agent.instrument, 5, seed=3)
    paper_tick()
    services.agent_demote(agent, actor=agent.owner, reason="members changed")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    assert not PaperAccount.objects.filter(agent=agent, closed_at__isnull=True).exists()
    assert PaperEquityPoint.objects.filter(account__agent=agent).exists()


def test_refreshed_members_trade_as_the_challenger_in_a_shadow_account(django_capture_on_commit_callbacks):
    agent, members = ensemble_with_members({"max_drawdown": 1.0}, paper=True)
    moved = members[0]
    moved.current_version = StrategyVersion.objects.create(
        agent=moved, number=2, origin="manual",
        params=get_template("sma_crossover").validate({**moved.current_version.params, "fast": 4}))
    moved.save(update_fields=["current_version"])
    iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    (refinement,) = Refinement.objects.filter(iteration=iteration)
    decisions.refinement_approve(refinement, actor=agent.owner)
    with django_capture_on_commit_callbacks(execute=True):
        version = decisions.refinements_apply(agent, actor=agent.owner, refinement=refinement)
    shadow = PaperAccount.objects.get(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True)
    assert shadow.version_id == version.pk
    assert shadow.version.params["members"][0]["params"]["fast"] == 4
    append_bars(agent.instrument, 50, seed=31, vol=0.025)
    paper_tick()
    for account in PaperAccount.objects.filter(agent=agent, closed_at__isnull=True):
        report = consistency_report(account)
        assert report["ok"], (account.role, report["problems"])
        assert account.bars_processed == 50
