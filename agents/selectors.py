"""Who sees whose agents: the lab's one owner-scoping rule, used by the API, the admin, the
console and the shell.

A superuser (the lab's administrator) sees every agent, everything under them and the lab-wide
rows (agent-less alerts, health details). Everyone else, staff included, sees only the agents they
own and what hangs under them. `is_staff` is Django's "may log in to the console" flag: every
console user has it, so it cannot also mean "sees everything" without undoing owner scoping for
every console user, and the API would show, to the same session, agents the console hides.
"""

from django.db.models import Q

from agents.models import TradingAgent

# The user flag that means "sees everything", read by the predicate and by the query below.
SEES_EVERYTHING_FLAG = "is_superuser"


def sees_everything(user):
    """True for the users who see every owner's agents and the lab-wide rows."""
    return bool(getattr(user, SEES_EVERYTHING_FLAG))


def users_seeing_everything(user_path):
    """The same rule as a filter on a user foreign key, e.g. the channels that may receive a
    lab-wide alert: Q(owner__is_superuser=True) for user_path="owner"."""
    return Q(**{f"{user_path}__{SEES_EVERYTHING_FLAG}": True})


def owned_rows(queryset, user, owner_path="agent__owner"):
    """`queryset` narrowed to the rows the user may see; `owner_path` leads from a row to the
    owning user (`owner` for an agent, `agent__owner` for a row of an agent). Rows with no owner
    (lab-wide alerts) are seen only by those who see everything."""
    return queryset if sees_everything(user) else queryset.filter(**{owner_path: user})


def agents_visible_to(user):
    """The agents the user may see and act on; another owner's agent is, to them, no agent (404)."""
    return owned_rows(TradingAgent.objects.all(), user, owner_path="owner")
