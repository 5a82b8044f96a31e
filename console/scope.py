"""Who sees what in the console: superusers see the whole lab, other staff their own agents."""

from agents.models import ActivityLog, LearningIteration, TradingAgent
from alerts.models import AgentAlert
from graduation.models import GraduationEvent


def sees_everything(user):
    return bool(user.is_superuser)


def agents_of(user):
    qs = TradingAgent.objects.all()
    return qs if sees_everything(user) else qs.filter(owner=user)


def iterations_of(user):
    qs = LearningIteration.objects.all()
    return qs if sees_everything(user) else qs.filter(agent__owner=user)


def activity_of(user):
    qs = ActivityLog.objects.all()
    return qs if sees_everything(user) else qs.filter(agent__owner=user)


def alerts_of(user):
    """Alerts the user may see: lab-wide (SYSTEM) ones only for superusers."""
    qs = AgentAlert.objects.all()
    return qs if sees_everything(user) else qs.filter(agent__owner=user)


def graduation_events_of(user):
    qs = GraduationEvent.objects.all()
    return qs if sees_everything(user) else qs.filter(agent__owner=user)
