"""The names of the tournaments' Celery tasks, declared once (tournaments.tasks registers each task
under its name; the beat rows, the beat schedule and services send by these names)."""

SCHEDULED_ROUND = "tournaments.tasks.scheduled_round_task"
RECOMPUTE_STANDINGS = "tournaments.tasks.recompute_standings_task"
REFRESH_STALE_STANDINGS = "tournaments.tasks.refresh_stale_standings_task"
RECONCILE_SCHEDULES = "tournaments.tasks.reconcile_schedules_task"
