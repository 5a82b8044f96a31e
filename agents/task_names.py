"""The names of agents' Celery tasks, declared once: agents.tasks registers each task under its
name here, and services, beat rows and feeds send by these names (config.task_messages), so
nothing below agents.tasks imports it."""

RUN_ITERATION = "agents.tasks.run_iteration_task"
CONTINUOUS_TICK = "agents.tasks.continuous_tick_task"
REAP_STUCK_ITERATIONS = "agents.tasks.reap_stuck_iterations_task"
SCHEDULED_ITERATION = "agents.tasks.scheduled_iteration_task"
RECONCILE_SCHEDULES = "agents.tasks.reconcile_schedules_task"
IMPORT_BARS = "agents.tasks.bar_import_task"
POLL_BAR_FEED = "agents.tasks.poll_bar_feed_task"
