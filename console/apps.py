from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator console: the admin's dashboard and agent page.

    It composes every app (agents, alerts, graduation, tournaments), so it sits above them all in
    the dependency order: console -> tournaments -> graduation -> alerts -> agents.
    """

    name = "console"
    default_auto_field = "django.db.models.BigAutoField"
