"""Finding an agent by id or name for the management commands."""

import uuid

from django.core.management.base import CommandError

from agents.models import TradingAgent


def find_agent(ref):
    try:
        return TradingAgent.objects.select_related("instrument", "current_version").get(pk=uuid.UUID(str(ref)))
    except (ValueError, TradingAgent.DoesNotExist):
        pass
    matches = list(TradingAgent.objects.select_related("instrument", "current_version").filter(name=ref)[:2])
    if not matches:
        raise CommandError(f"no agent with id or name '{ref}'")
    if len(matches) > 1:
        raise CommandError(f"several agents are named '{ref}'; use the id")
    return matches[0]
