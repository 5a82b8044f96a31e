"""Who sees which tournaments: the lab's one owner rule (agents.selectors.owned_rows): a superuser
sees every tournament, everyone else the ones they own."""

from agents.selectors import owned_rows
from tournaments.models import Tournament


def tournaments_visible_to(user):
    return owned_rows(Tournament.objects.all(), user, owner_path="owner")
