import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents.models import Instrument, TradingAgent
from agents.services import approval, continuous, scheduling
from agents.services.agents import agent_create
from graduation import services as graduation_services

# The demo runs on the lab's own default thresholds and graduation criteria: nothing is lowered
# so that something graduates. An agent that does not earn paper trading shows on the console
# what it lacks; paper trading, when earned, is the forward test on the replayed bars.
# Lives in the top app (console) because it composes every app below it.
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


class Command(BaseCommand):
    help = (
        "Create the demo agents (idempotent), owned by the operator login: some learn continuously, "
        "some on a schedule, some auto-approve and auto-graduate."
    )

    def handle(self, *args, **opts):
        username = os.environ.get("LAB_ADMIN_USER", "operator")
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"no user '{username}': run ensure_operator first")
        for demo in DEMO_AGENTS:
            spec = demo["spec"]
            if TradingAgent.objects.filter(owner=owner, name=spec["name"]).exists():
                self.stdout.write(f"demo agent '{spec['name']}' exists")
                continue
            if not Instrument.objects.filter(symbol=spec["instrument"]).exists():
                raise CommandError(f"instrument {spec['instrument']} missing: run load_sample_data first")
            with transaction.atomic():
                agent = agent_create(owner=owner, refiner="auto", **spec)
                how = self._configure(agent, demo, owner)
            self.stdout.write(self.style.SUCCESS(f"created demo agent '{spec['name']}' ({how})"))

    def _configure(self, agent, demo, owner):
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
