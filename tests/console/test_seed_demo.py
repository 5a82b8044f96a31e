"""The demo `make run` starts with (console/demo.py): on the bundled data, through the services."""

import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from agents.market.samples import load_sample_datasets
from agents.models import AgentStatus, TradingAgent
from console import demo
from graduation.models import AccountRole, GraduationEvent, PaperAccount
from graduation.trading import accounts
from tournaments.models import Tournament, TournamentStanding

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_seed_demo_sets_up_autonomy_a_challenger_and_a_tournament_once():
    load_sample_datasets()
    call_command("ensure_operator", stdout=io.StringIO())
    out = run("seed_demo")
    assert out.count("created demo agent") == len(demo.DEMO_AGENTS) + 2
    assert TradingAgent.objects.filter(continuous_learning_enabled=True).count() == 3
    assert TradingAgent.objects.filter(auto_learn_enabled=True).count() == 3
    assert PeriodicTask.objects.filter(name__startswith="agent:", enabled=True).count() == 3
    assert TradingAgent.objects.filter(auto_approve_enabled=True).count() == 3

    # The A/B agent: graduated by a person on its (named) practice criteria, a challenger in a shadow.
    ab = TradingAgent.objects.get(name=demo.AB_AGENT["name"])
    assert ab.status == AgentStatus.PAPER_TRADING
    assert ab.graduation_criteria == demo.PRACTICE_CRITERIA
    assert GraduationEvent.objects.filter(agent=ab, kind="graduate", automatic=False).count() == 1
    champion, shadow = accounts.open_account_of(ab), accounts.challenger_account_of(ab)
    assert shadow is not None and not shadow.live and shadow.role == AccountRole.CHALLENGER
    assert shadow.version != champion.version and shadow.version == ab.current_version
    assert (shadow.fee_bps, shadow.slippage_bps, shadow.initial_capital) == (
        champion.fee_bps, champion.slippage_bps, champion.initial_capital)
    assert f"challenger v{shadow.version.number} in a shadow account" in out

    # The ensemble: the average of the S&P 500 trend agent and the A/B agent, frozen in its version.
    blend = TradingAgent.objects.get(name=demo.ENSEMBLE["name"])
    members = {m["agent"] for m in blend.current_version.params["members"]}
    assert members == {str(pk) for pk in TradingAgent.objects.filter(
        name__in=demo.ENSEMBLE["member_names"]).values_list("pk", flat=True)}

    # The tournament: the SPX and IXIC agents (the ensemble too), standings stored, a round row.
    tournament = Tournament.objects.get(name=demo.TOURNAMENT["name"])
    entrants = set(tournament.entries.values_list("agent__instrument__symbol", flat=True))
    assert entrants == set(demo.TOURNAMENT["instruments"])
    assert tournament.entries.count() == 4 and tournament.entries.filter(agent=blend).exists()
    standings = TournamentStanding.objects.filter(tournament=tournament)
    assert sorted(standings.values_list("rank", flat=True)) == [1, 2, 3, 4]
    assert tournament.leader_id is not None
    assert PeriodicTask.objects.filter(name=f"tournament:{tournament.pk}:round", enabled=True).exists()

    again = run("seed_demo")
    assert again.count("exists") == len(demo.DEMO_AGENTS) + 3
    assert TradingAgent.objects.count() == len(demo.DEMO_AGENTS) + 2
    assert Tournament.objects.count() == 1
    assert PaperAccount.objects.filter(agent=ab, closed_at__isnull=True).count() == 2
