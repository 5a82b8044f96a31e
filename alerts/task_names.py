"""The names of the alerts tasks that alerts' own services send (config.task_messages), declared
once: alerts.tasks registers each task under its name here, so alerts.notify never imports it."""

DELIVER = "alerts.tasks.deliver_task"
FLUSH_FOLDED = "alerts.tasks.flush_folded_task"
