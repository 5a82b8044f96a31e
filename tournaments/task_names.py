"""The names of the tournaments' Celery tasks, declared once (tournaments.tasks registers each task
under its name; the beat rows and services send by these names)."""

SCHEDULED_ROUND = "tournaments.tasks.scheduled_round_task"
RECOMPUTE_STANDINGS = "tournaments.tasks.recompute_standings_task"
