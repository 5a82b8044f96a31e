import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.models import Instrument, TradingAgent
from agents.services.agents import agent_create

# One demo agent per bundled instrument, each with a different template.
DEMO_AGENTS = [
    {"name": "S&P 500 trend (SMA)", "instrument": "SPX", "strategy_template": "sma_crossover"},
    {"name": "NASDAQ momentum (MACD)", "instrument": "IXIC", "strategy_template": "ema_macd"},
    {"name": "GOOG mean reversion (RSI)", "instrument": "GOOG", "strategy_template": "rsi_reversion"},
    {"name": "EUR/USD bands (Bollinger)", "instrument": "EURUSD", "strategy_template": "bollinger_reversion"},
    {"name": "BTC breakout (Donchian)", "instrument": "BTCUSD", "strategy_template": "donchian_breakout"},
]


class Command(BaseCommand):
    help = "Create the demo agents (idempotent), owned by the operator login."

    def handle(self, *args, **opts):
        username = os.environ.get("LAB_ADMIN_USER", "operator")
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"no user '{username}': run ensure_operator first")
        for spec in DEMO_AGENTS:
            if TradingAgent.objects.filter(owner=owner, name=spec["name"]).exists():
                self.stdout.write(f"demo agent '{spec['name']}' exists")
                continue
            if not Instrument.objects.filter(symbol=spec["instrument"]).exists():
                raise CommandError(f"instrument {spec['instrument']} missing: run load_sample_data first")
            agent_create(owner=owner, refiner="auto", **spec)
            self.stdout.write(self.style.SUCCESS(f"created demo agent '{spec['name']}'"))
