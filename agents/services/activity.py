"""The activity log: every decision the lab takes, by itself or by a person."""

from agents.models import ActivityLog


def actor_label_for(actor, default="system"):
    if actor is None:
        return default
    return getattr(actor, "username", None) or str(actor)


def activity_log(agent, *, event, message, actor=None, actor_label=None, details=None):
    return ActivityLog.objects.create(
        agent=agent,
        event=event,
        message=message,
        details=details or {},
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=actor_label or actor_label_for(actor),
    )
