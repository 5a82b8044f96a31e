"""Champion / challenger on paper: the shadow's lifecycle, the paired test against a reference
computation, promotion (automatic on paper, by a person on live), dismissal, the constraint."""

import io

import numpy as np
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from scipy import stats as sps

from agents.models import ActivityLog, AgentStatus, IterationTrigger, Refinement
from agents.services import decisions, learning, manual_approval
from alerts.models import AgentAlert, AlertType
from core.errors import Conflict, PermissionRefused, ValidationFailed
from graduation import challenger, services
from graduation.models import AccountRole, EventKind, GraduationEvent, PaperAccount, PaperEquityPoint
from graduation.trading import accounts
from graduation.trading.consistency import consistency_report
from graduation.trading.runner import paper_tick
from tests.graduation.helpers import T0, add_iteration, append_bars, correlated, crafted, paper_agent
from tests.graduation.test_transitions import approver

pytestmark = pytest.mark.django_db

FAST = {"fast": 3, "slow": 8}
NO_LIMIT = {"max_drawdown": 1.0}


def apply_version(agent, params, capture):
    iteration = add_iteration(agent)
    refinement = Refinement.objects.create(iteration=iteration, agent=agent, proposed_params=params, source="optuna",
                                           score=2.0)
    decisions.refinement_approve(refinement, actor=agent.owner)
    with capture(execute=True):
        version = decisions.refinements_apply(agent, actor=agent.owner, refinement=refinement)
    agent.refresh_from_db()
    return version


def open_shadow(agent):
    return PaperAccount.objects.get(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True)


def reference(champion_equity, challenger_equity, alpha):
    """Memmel (2003) z and the minimum track record, written out with numpy / scipy."""
    a = challenger_equity[1:] / challenger_equity[:-1] - 1.0
    b = champion_equity[1:] / champion_equity[:-1] - 1.0
    t = len(a)
    sr_a, sr_b = a.mean() / a.std(ddof=1), b.mean() / b.std(ddof=1)
    rho = np.corrcoef(a, b)[0, 1]
    theta = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / t
    z = (sr_a - sr_b) / np.sqrt(theta)
    g3 = sps.skew(a, bias=True)
    g4 = sps.kurtosis(a, fisher=False, bias=True)
    min_trl = 1 + (1 - g3 * sr_a + (g4 - 1) / 4 * sr_a**2) * (sps.norm.ppf(1 - alpha) / (sr_a - sr_b)) ** 2
    return {"t": t, "z": z, "p": sps.norm.sf(z), "rho": rho, "sr_a": sr_a, "sr_b": sr_b, "min_trl": min_trl}


def equity_of(account):
    return np.array(PaperEquityPoint.objects.filter(account=account, timestamp__gte=T0).order_by("timestamp")
                    .values_list("equity", flat=True))


@pytest.mark.parametrize(("seed", "edge", "n", "ready"), [
    (0, 0.004, 120, True),  # a clear edge over 120 bars
    (1, 0.0002, 120, False),  # no edge to speak of: p > 0.05
    (2, 0.004, 40, False),  # significant, but 40 common bars < LAB_PAPER_MIN_BARS (60)
])
def test_the_paired_test_matches_memmel_written_out(seed, edge, n, ready):
    champion_r, challenger_r = correlated(seed, n, edge)
    agent, champion, shadow = crafted(champion_r, challenger_r)
    state = challenger.challenger_state(agent)
    ref = reference(equity_of(champion), equity_of(shadow), 0.05)
    assert state["bars"] == ref["t"] == n
    assert state["z"] == pytest.approx(ref["z"], rel=1e-9)
    assert state["p_value"] == pytest.approx(ref["p"], rel=1e-6, abs=1e-15)
    assert state["rho"] == pytest.approx(ref["rho"], rel=1e-9)
    assert state["sr_challenger"] == pytest.approx(ref["sr_a"], rel=1e-9)
    assert state["sr_champion"] == pytest.approx(ref["sr_b"], rel=1e-9)
    if ref["sr_a"] > ref["sr_b"]:
        assert state["min_trl"] == pytest.approx(ref["min_trl"], rel=1e-9)
    expected = ref["p"] <= 0.05 and n >= ref["min_trl"] and n >= 60
    assert bool(expected) is ready  # the crafted cases are what their comment says
    assert state["state"] == ("ready" if ready else "collecting")
    assert state["champion"]["id"] == champion.pk and state["challenger"]["id"] == shadow.pk


def test_a_ready_challenger_of_a_paper_agent_is_promoted_with_the_evidence():
    agent, champion, shadow = crafted(*correlated(0, 120, 0.004))
    assert challenger.challenger_after_tick(agent.pk) == "promoted"
    event = GraduationEvent.objects.get(agent=agent, kind=EventKind.REPIN)
    assert event.automatic and event.version.number == 2 and event.previous_version.number == 1
    evidence = event.metrics_snapshot["evidence"]
    ref = reference(equity_of(champion), equity_of(shadow), 0.05)
    assert evidence["z"] == pytest.approx(ref["z"], rel=1e-9) and evidence["bars"] == 120
    assert evidence["min_trl"] == pytest.approx(ref["min_trl"], rel=1e-9) and evidence["level"] == 0.05
    assert (evidence["champion_account"], evidence["challenger_account"]) == (champion.pk, shadow.pk)
    assert {"p_value", "rho", "sr_challenger", "sr_champion"} <= set(evidence)
    champion.refresh_from_db()
    shadow.refresh_from_db()
    # The shadow is the champion now: the paper record is v2's own, from the bar it opened on.
    assert shadow.role == "champion" and shadow.closed_at is None and shadow.version.number == 2
    assert accounts.open_account_of(agent).pk == shadow.pk and accounts.challenger_account_of(agent) is None
    assert champion.closed_at is not None and champion.version.number == 1
    assert champion.close_reason == f"replaced by its challenger, account {shadow.pk} (v2)"
    assert services.version_at(agent, event.created_at)["version"].number == 2
    # Nothing more to do: the champion trades the current version.
    assert challenger.challenger_sync(agent.pk) is None
    assert challenger.challenger_state(agent)["state"] == "none"


def test_a_collecting_challenger_cannot_be_promoted():
    agent, champion, _shadow = crafted(*correlated(2, 40, 0.004))
    assert challenger.challenger_after_tick(agent.pk) is None
    with pytest.raises(Conflict) as refused:
        challenger.challenger_promote(agent, actor=agent.owner)
    assert "40 common bars" in refused.value.errors["challenger"]
    champion.refresh_from_db()
    assert champion.version.number == 1


def test_a_live_agents_challenger_waits_for_a_person_with_the_permission():
    agent, champion, shadow = crafted(*correlated(0, 120, 0.004), live=True)
    state = challenger.challenger_state(agent)
    assert state["state"] == "ready" and state["needs_person"] and "waiting for a person" in state["verdict"]
    assert challenger.challenger_after_tick(agent.pk) == "waiting"
    assert challenger.challenger_after_tick(agent.pk) == "waiting"  # repeats update the one alert
    alert = AgentAlert.objects.get(agent=agent, alert_type=AlertType.GRADUATION_READY)
    assert alert.fingerprint == f"challenger:{shadow.pk}" and "approve_live_trading" in alert.message
    assert not GraduationEvent.objects.filter(agent=agent, kind=EventKind.REPIN).exists()
    with pytest.raises(PermissionRefused) as refused:
        challenger.challenger_promote(agent, actor=agent.owner)
    assert "approve_live_trading" in refused.value.errors["permission"]
    with pytest.raises(PermissionRefused):
        challenger.challenger_promote(agent, automatic=True)
    person = approver()
    event = challenger.challenger_promote(agent, actor=person)
    assert not event.automatic and event.actor == person and event.to_status == AgentStatus.LIVE_TRADING
    champion.refresh_from_db()
    assert champion.version.number == 2 and champion.live


def test_a_person_dismisses_a_challenger_and_it_is_not_shadowed_again():
    agent, _champion, shadow = crafted(*correlated(1, 120, 0.0002))
    with pytest.raises(ValidationFailed) as refused:
        challenger.challenger_dismiss(agent, actor=agent.owner, reason="  ")
    assert "reason" in refused.value.errors
    closed = challenger.challenger_dismiss(agent, actor=agent.owner, reason="overfitted")
    assert closed.pk == shadow.pk and closed.close_reason.startswith("dismissed") and closed.closed_at
    assert ActivityLog.objects.filter(agent=agent, event="challenger_dismissed").exists()
    assert challenger.challenger_sync(agent.pk) is None
    assert accounts.challenger_account_of(agent) is None
    with pytest.raises(Conflict):
        challenger.challenger_dismiss(agent, actor=agent.owner, reason="again")


# --- lifecycle on real ticks ------------------------------------------------------------------------
def test_the_shadow_opens_on_the_champions_bar_is_replaced_and_trades_the_same_bars(
        django_capture_on_commit_callbacks):
    agent = paper_agent(NO_LIMIT, params=FAST)
    append_bars(agent.instrument, 15, seed=4)
    paper_tick()
    champion = accounts.open_account_of(agent)
    v2 = apply_version(agent, {"fast": 4, "slow": 9}, django_capture_on_commit_callbacks)
    first = open_shadow(agent)
    assert first.version == v2 and first.opened_bar_timestamp == champion.last_bar_timestamp
    assert (first.initial_capital, first.fee_bps, first.slippage_bps) == (
        champion.initial_capital, champion.fee_bps, champion.slippage_bps)
    append_bars(agent.instrument, 10, seed=5)
    paper_tick()
    v3 = apply_version(agent, {"fast": 5, "slow": 12}, django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert first.closed_at is not None and first.close_reason == f"replaced by v{v3.number}"
    shadow = open_shadow(agent)
    assert shadow.version == v3
    append_bars(agent.instrument, 30, seed=6)
    paper_tick()
    champion.refresh_from_db()
    shadow.refresh_from_db()
    assert accounts.open_account_of(agent).pk == champion.pk and champion.version.number == 1
    assert accounts.challenger_account_of(agent).pk == shadow.pk
    assert shadow.last_bar_timestamp == champion.last_bar_timestamp and shadow.bars_processed == 30
    stamps, ours, theirs = challenger.paired_returns(champion, shadow)
    assert len(stamps) == 31 and len(ours) == len(theirs) == 30
    assert stamps[0] == shadow.opened_bar_timestamp
    assert challenger.challenger_state(agent)["bars"] == 30
    # The consistency check replays the shadow like any account, decisions included.
    report = consistency_report(PaperAccount.objects.select_related("agent__instrument", "version").get(pk=shadow.pk))
    assert report["ok"], report["problems"]
    assert report["role"] == "challenger" and report["decisions_mismatched"] == 0
    out = io.StringIO()
    call_command("paper_consistency", agent.name, "--challenger", stdout=out)
    assert f"paper challenger account {shadow.pk}" in out.getvalue() and "consistent" in out.getvalue()
    out = io.StringIO()
    call_command("paper_consistency", agent.name, "--all", stdout=out)
    assert out.getvalue().count("consistent within") == 2


def test_reactions_read_the_champion_only_and_demotion_closes_the_shadow(django_capture_on_commit_callbacks):
    agent = paper_agent({"max_drawdown": 0.5}, params=FAST)
    apply_version(agent, {"fast": 4, "slow": 9}, django_capture_on_commit_callbacks)
    shadow = open_shadow(agent)
    PaperAccount.objects.filter(pk=shadow.pk).update(max_drawdown=0.99)  # a shadow past the line
    append_bars(agent.instrument, 10, seed=8, vol=0.005)
    paper_tick()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    services.agent_demote(agent, actor=agent.owner, reason="enough")
    assert not PaperAccount.objects.filter(agent=agent, closed_at__isnull=True).exists()


def test_graduating_to_live_trades_the_champions_version_and_reopens_the_shadow(
        settings, django_capture_on_commit_callbacks):
    settings.LAB_PAPER_MIN_BARS = 20
    settings.LAB_PAPER_MIN_TRADES = 1
    lenient = {"max_drawdown": 1.0, "min_total_return": -1.0, "min_paper_psr": 0.0,
               "paper_track_record_confidence": None}
    agent = paper_agent(lenient, params=FAST)
    append_bars(agent.instrument, 40, seed=9)
    paper_tick()
    apply_version(agent, {"fast": 4, "slow": 9}, django_capture_on_commit_callbacks)
    paper_shadow = open_shadow(agent)
    event = services.agent_graduate(agent, actor=approver(), reason="paper record", confirm=True)
    assert event.version.number == 1  # the version whose paper record is the evidence
    paper_shadow.refresh_from_db()
    assert paper_shadow.closed_at is not None
    live = accounts.open_account_of(agent)
    assert live.live and live.version.number == 1
    paper_tick()  # the champion's tick opens the new shadow next to the live account
    shadow = open_shadow(agent)
    assert not shadow.live and shadow.version.number == 2 and shadow.opened_bar_timestamp == live.last_bar_timestamp


def test_the_database_allows_one_open_account_per_role_and_no_live_shadow():
    agent = paper_agent(params=FAST)
    champion = accounts.open_account_of(agent)
    with pytest.raises(IntegrityError), transaction.atomic():
        accounts.open_account(agent, agent.current_version)
    with transaction.atomic():
        accounts.open_account(agent, agent.current_version, role=AccountRole.CHALLENGER, like=champion)
    with pytest.raises(IntegrityError), transaction.atomic():
        accounts.open_account(agent, agent.current_version, role=AccountRole.CHALLENGER, like=champion)
    accounts.close_account(agent, "test", role=AccountRole.CHALLENGER)
    with pytest.raises(IntegrityError), transaction.atomic():
        accounts.open_account(agent, agent.current_version, role=AccountRole.CHALLENGER, live=True, like=champion)
    assert PaperAccount.objects.filter(agent=agent, closed_at__isnull=True).count() == 1


@pytest.mark.parametrize("n", [40, 400])
def test_the_state_costs_the_same_few_queries_whatever_the_record(n):
    agent, _champion, _shadow = crafted(*correlated(0, n, 0.004))
    with CaptureQueriesContext(connection) as queries:
        assert challenger.challenger_state(agent)["bars"] == n
    assert len(queries) == 4  # the two accounts, then the two equity curves


def test_the_demo_recipe_a_learned_refinement_applied_while_paper_trading_opens_the_shadow(
        django_capture_on_commit_callbacks):
    # The service calls the README and the demo use: a real iteration of a paper agent, a person's
    # approval with the gate's evidence, the application; the receiver opens the shadow.
    agent = paper_agent(NO_LIMIT, params=FAST)
    iteration, _created = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL, requested_by=agent.owner)
    assert iteration.status == "succeeded", iteration.error
    best = Refinement.objects.filter(iteration=iteration, status="pending").order_by("-score").first()
    manual_approval.refinement_approve_with_evidence(best, actor=agent.owner)
    with django_capture_on_commit_callbacks(execute=True):
        version = decisions.refinements_apply(agent, actor=agent.owner, refinement=best)
    shadow = open_shadow(agent)
    assert shadow.version == version and accounts.open_account_of(agent).version.number == 1
    append_bars(agent.instrument, 5, seed=12)
    paper_tick()
    paper_tick()
    assert challenger.challenger_state(agent)["bars"] == 5


def test_the_shadow_closes_when_the_current_version_is_the_champions_again():
    agent, champion, shadow = crafted(*correlated(1, 60, 0.0))
    agent.current_version = champion.version  # e.g. set back by hand in the admin
    agent.save(update_fields=["current_version"])
    assert challenger.challenger_sync(agent.pk) == "closed"
    shadow.refresh_from_db()
    assert shadow.closed_at is not None and "champion's version" in shadow.close_reason
    assert challenger.challenger_sync(agent.pk) is None
