"""History: which version was the agent trading, and in which status, at any past time."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Permission

from agents.models import AgentStatus, Refinement
from agents.services import decisions, manual_approval
from graduation import services
from graduation.models import EventKind
from graduation.trading.runner import paper_tick
from tests.factories import UserFactory
from tests.graduation.helpers import PAPER_LENIENT, add_iteration, append_bars, eligible_agent

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def at(hours):
    return T0 + dt.timedelta(hours=hours)


def test_what_was_paper_or_live_at_time_t(settings, django_capture_on_commit_callbacks):
    settings.LAB_PAPER_MIN_BARS = 20
    settings.LAB_PAPER_MIN_TRADES = 1
    approver = UserFactory()
    approver.user_permissions.add(Permission.objects.get(codename="approve_live_trading"))
    approver = type(approver).objects.get(pk=approver.pk)

    with time_machine.travel(at(0), tick=False):
        agent = eligible_agent(PAPER_LENIENT, params={"fast": 3, "slow": 8})
        v1 = agent.current_version
    with time_machine.travel(at(1), tick=False):
        services.agent_graduate(agent, actor=agent.owner, reason="learning record")
        agent.refresh_from_db()
    with time_machine.travel(at(2), tick=False):
        append_bars(agent.instrument, 40, seed=21)
        paper_tick()
    with time_machine.travel(at(3), tick=False):
        refinement = Refinement.objects.create(iteration=add_iteration(agent), agent=agent, source="optuna",
                                               proposed_params={"fast": 4, "slow": 9}, score=2.0)
        manual_approval.refinement_approve_with_evidence(refinement, actor=agent.owner)
        with django_capture_on_commit_callbacks(execute=True):
            v2 = decisions.refinements_apply(agent, actor=agent.owner, refinement=refinement)
        # v2 is the challenger now (graduation.challenger); its winning promotion is this re-pin.
        assert services.version_at(agent, at(3))["version"] == v1
        services.repin_record(agent.pk, version_id=v2.pk, note="the challenger won")
        agent.refresh_from_db()
    with time_machine.travel(at(4), tick=False):
        services.agent_graduate(agent, actor=approver, reason="paper record", confirm=True)
        agent.refresh_from_db()
    with time_machine.travel(at(5), tick=False):
        services.agent_demote(agent, actor=agent.owner, reason="enough")
        agent.refresh_from_db()

    def answer(hours):
        found = services.version_at(agent, at(hours))
        return found["status"], found["version"]

    assert answer(0.5) == (AgentStatus.LEARNING, v1)
    assert answer(1) == (AgentStatus.PAPER_TRADING, v1)  # the event's own instant counts
    assert answer(2.5) == (AgentStatus.PAPER_TRADING, v1)
    assert answer(3.5) == (AgentStatus.PAPER_TRADING, v2)
    assert answer(4.5) == (AgentStatus.LIVE_TRADING, v2)
    assert answer(6) == (AgentStatus.LEARNING, v2)
    assert services.version_at(agent, at(4.5))["trading"] is True

    kinds = [(e.kind, e.from_status, e.to_status) for e in services.history(agent)]
    assert kinds == [
        (EventKind.DEMOTE, AgentStatus.LIVE_TRADING, AgentStatus.LEARNING),
        (EventKind.GRADUATE, AgentStatus.PAPER_TRADING, AgentStatus.LIVE_TRADING),
        (EventKind.REPIN, AgentStatus.PAPER_TRADING, AgentStatus.PAPER_TRADING),
        (EventKind.GRADUATE, AgentStatus.LEARNING, AgentStatus.PAPER_TRADING),
    ]
