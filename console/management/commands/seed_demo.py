import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console import demo
from core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Create the demo (idempotent), owned by the operator login: agents that learn continuously or on a "
        "schedule, auto-approve and auto-graduate; one agent paper trading with a challenger in a shadow "
        "account; an ensemble of two S&P 500 agents; one tournament over the S&P 500 and NASDAQ agents "
        "(console/demo.py)."
    )

    def handle(self, *args, **opts):
        username = os.environ.get("LAB_ADMIN_USER", "operator")
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"no user '{username}': run ensure_operator first")
        try:
            demo.demo_agents_seed(owner, say=self._say)
            demo.demo_challenger_seed(owner, say=self._say)
            demo.demo_ensemble_seed(owner, say=self._say)
            demo.demo_tournament_seed(owner, say=self._say)
        except (LookupError, ServiceError) as exc:
            raise CommandError(str(exc)) from exc

    def _say(self, message, success=False):
        self.stdout.write(self.style.SUCCESS(message) if success else message)
