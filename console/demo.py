"""The demo the README's `make run` starts with: agents, an ensemble, a champion/challenger pair, a tournament.

Lives in the top app because it composes every app below it. Each part is idempotent (a second
run finds what the first made and says so) and goes through the services a user would call.

The demo runs on the lab's own default thresholds and graduation criteria: nothing is lowered so
that something graduates. An agent that does not earn paper trading shows on the console what it
lacks; paper trading, when earned, is the forward test on the replayed bars.

One exception, named in the agent's own name and in its criteria overrides on the agent page:
the A/B demo agent. A champion/challenger pair exists only while an agent trades, and on the
bundled data no agent may earn paper trading on the default criteria within a demo's first
minutes. So its owner sets *practice criteria* (every rule at its loosest, the way any owner may
override them per agent), it graduates through the ordinary service, and a person then approves
one learned candidate with the gate's evidence (manual approval says which rules it fails). The
approved version becomes the challenger in a shadow account; the replay tick trades both.
"""

from django.db import transaction

from agents.models import AgentStatus, Instrument, IterationTrigger, Refinement, RefinementStatus, TradingAgent
from agents.services import approval, continuous, decisions, learning, manual_approval, scheduling
from agents.services.agents import agent_create
from graduation import challenger
from graduation import services as graduation_services
from graduation.criteria import criteria_set
from graduation.trading import accounts
from tournaments.models import Tournament
from tournaments.services.standings import standings_recompute
from tournaments.services.tournaments import tournament_create

# One demo agent per bundled instrument, each with a different template and way of learning.
DEMO_AGENTS = [
    {
        "spec": {"name": "S&P 500 trend (SMA)", "instrument": "SPX", "strategy_template": "sma_crossover",
                 "min_iteration_gap_minutes": 0, "max_iterations_per_day": 200},
        "continuous": True, "auto_approve": True, "auto_graduate": True,
    },
    {
        "spec": {"name": "NASDAQ momentum (MACD)", "instrument": "IXIC", "strategy_template": "ema_macd"},
        "cron": "* * * * *", "auto_approve": True,
    },
    {
        "spec": {"name": "GOOG mean reversion (RSI)", "instrument": "GOOG", "strategy_template": "rsi_reversion",
                 "min_iteration_gap_minutes": 2, "max_iterations_per_day": 100},
        "continuous": True, "auto_approve": True, "auto_graduate": True,
    },
    {
        "spec": {"name": "EUR/USD bands (Bollinger)", "instrument": "EURUSD",
                 "strategy_template": "bollinger_reversion"},
        "cron": "*/2 * * * *",
    },
    {
        # 156 monthly bars, fewer while the replay holds the newest back: 3 folds of at least 20 bars
        # and a sealed window of 20 fit from 100 bars on (5 folds would need 125).
        "spec": {"name": "BTC breakout (Donchian)", "instrument": "BTCUSD", "strategy_template": "donchian_breakout",
                 "min_iteration_gap_minutes": 0, "convergence_threshold": 0.02, "n_folds": 3},
        "continuous": True,
    },
]

AB_AGENT = {"name": "S&P 500 A/B demo (RSI, practice criteria)", "instrument": "SPX",
            "strategy_template": "rsi_reversion"}
# Every graduation rule at its loosest (graduation.criteria): the demo's one lowered bar, see above.
PRACTICE_CRITERIA = {
    "min_iterations": 1, "min_fold_pass": 1, "min_win_rate": 0.0, "min_sharpe_ratio": -10.0,
    "min_total_return": -1.0, "min_signals": 0, "max_drawdown": 1.0, "min_probabilistic_sharpe": None,
    "min_dsr": 0.0, "max_pbo": 1.0, "track_record_confidence": None,
}
AB_MAX_ITERATIONS = 6  # iterations tried until one leaves a candidate to approve

# An ensemble of the two S&P 500 agents: it trades the average of their targets and, on a
# schedule, proposes their newer versions as its candidate (judged by the gate like any other).
ENSEMBLE = {"name": "S&P 500 blend (ensemble)", "instrument": "SPX", "strategy_template": "ensemble",
            "member_names": ("S&P 500 trend (SMA)", AB_AGENT["name"]), "cron": "*/5 * * * *"}

TOURNAMENT = {
    "name": "US indices cup",
    "description": "The demo's S&P 500 and NASDAQ agents, ranked on their common sealed window and their "
                   "forward records.",
    "instruments": ("SPX", "IXIC"),
    "round_schedule": "*/10 * * * *",
}


def _missing_instrument(symbol):
    return f"instrument {symbol} missing: run load_sample_data first"


def demo_agents_seed(owner, *, say):
    """The DEMO_AGENTS, each with its way of learning; returns the number created."""
    created = 0
    for demo in DEMO_AGENTS:
        spec = demo["spec"]
        if TradingAgent.objects.filter(owner=owner, name=spec["name"]).exists():
            say(f"demo agent '{spec['name']}' exists")
            continue
        if not Instrument.objects.filter(symbol=spec["instrument"]).exists():
            raise LookupError(_missing_instrument(spec["instrument"]))
        with transaction.atomic():
            agent = agent_create(owner=owner, refiner="auto", **spec)
            how = _configure(agent, demo, owner)
        say(f"created demo agent '{spec['name']}' ({how})", success=True)
        created += 1
    return created


def _configure(agent, demo, owner):
    how = []
    if demo.get("auto_approve"):
        approval.auto_approve_enable(agent, actor=owner)
        how.append("auto-approve")
    if demo.get("cron"):
        scheduling.auto_learn_enable(agent, actor=owner, cron=demo["cron"])
        how.append(f"schedule {demo['cron']}")
    if demo.get("continuous"):
        continuous.continuous_start(agent, actor=owner)
        how.append("continuous")
    if demo.get("auto_graduate"):
        graduation_services.switches_set(agent, {"auto_graduate": True}, actor=owner)
        how.append("auto-graduate")
    return ", ".join(how) or "manual"


def demo_challenger_seed(owner, *, say):
    """The A/B demo agent, paper trading with a challenger in a shadow account; returns it."""
    agent = TradingAgent.objects.filter(owner=owner, name=AB_AGENT["name"]).first()
    if agent is not None and accounts.challenger_account_of(agent) is not None:
        say(f"demo agent '{agent.name}' exists, with its challenger")
        return agent
    if not Instrument.objects.filter(symbol=AB_AGENT["instrument"]).exists():
        raise LookupError(_missing_instrument(AB_AGENT["instrument"]))
    if agent is None:
        agent = agent_create(owner=owner, refiner="auto", **AB_AGENT)
        criteria_set(agent, PRACTICE_CRITERIA, actor=owner)
    if agent.status == AgentStatus.LEARNING:
        learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL, requested_by=owner)
        agent.refresh_from_db()
        graduation_services.agent_graduate(
            agent, actor=owner, reason="demo: graduated on practice criteria to show champion and challenger")
        agent.refresh_from_db()
    for _ in range(AB_MAX_ITERATIONS):
        iteration, _created = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL, requested_by=owner)
        best = (Refinement.objects.filter(iteration=iteration, status=RefinementStatus.PENDING)
                .order_by("-score").first())
        if best is None:
            continue
        manual_approval.refinement_approve_with_evidence(
            best, actor=owner, reason="demo: the best candidate becomes the challenger")
        decisions.refinements_apply(agent, actor=owner, refinement=best)
        # The refinement_applied receiver opens the shadow after commit; this makes sure (idempotent).
        challenger.challenger_sync(agent.pk)
        break
    shadow = accounts.challenger_account_of(agent)
    if shadow is None:
        say(f"demo agent '{agent.name}' trades on paper, but no candidate came in {AB_MAX_ITERATIONS} iterations: "
            "no challenger yet")
    else:
        say(f"created demo agent '{agent.name}': paper trading v{accounts.open_account_of(agent).version.number}, "
            f"challenger v{shadow.version.number} in a shadow account", success=True)
    return agent


def demo_ensemble_seed(owner, *, say):
    """The ENSEMBLE of two demo agents, learning on a schedule; returns it."""
    agent = TradingAgent.objects.filter(owner=owner, name=ENSEMBLE["name"]).first()
    if agent is not None:
        say(f"demo agent '{agent.name}' exists")
        return agent
    members = list(TradingAgent.objects.filter(owner=owner, name__in=ENSEMBLE["member_names"])
                   .order_by("created_at").values_list("pk", flat=True))
    with transaction.atomic():
        agent = agent_create(owner=owner, name=ENSEMBLE["name"], instrument=ENSEMBLE["instrument"],
                             strategy_template=ENSEMBLE["strategy_template"], members=members)
        scheduling.auto_learn_enable(agent, actor=owner, cron=ENSEMBLE["cron"])
    say(f"created demo agent '{agent.name}' (the average of {len(members)} agents' targets, schedule "
        f"{ENSEMBLE['cron']})", success=True)
    return agent


def demo_tournament_seed(owner, *, say):
    """One tournament over the owner's demo agents on the instruments of TOURNAMENT; returns it."""
    tournament = Tournament.objects.filter(owner=owner, name=TOURNAMENT["name"]).first()
    if tournament is not None:
        say(f"demo tournament '{tournament.name}' exists")
        return tournament
    ids = list(TradingAgent.objects.filter(owner=owner, instrument__symbol__in=TOURNAMENT["instruments"])
               .order_by("created_at").values_list("pk", flat=True))
    tournament = tournament_create(owner, name=TOURNAMENT["name"], agent_ids=ids,
                                   description=TOURNAMENT["description"],
                                   round_schedule=TOURNAMENT["round_schedule"])
    standings_recompute(tournament.pk)
    say(f"created demo tournament '{tournament.name}' ({len(ids)} entrants, a round every 10 minutes)",
        success=True)
    return tournament
