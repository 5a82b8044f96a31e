from django.apps import AppConfig


class TournamentsConfig(AppConfig):
    """Tournaments: agents ranked together (console -> tournaments -> graduation -> alerts -> agents)."""

    name = "tournaments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # A round ends when its entrants' iterations have finished: agents announces each one.
        from agents import signals as agent_signals
        from tournaments import receivers

        agent_signals.iteration_finished.connect(
            receivers.on_iteration_finished, dispatch_uid="tournaments.iteration_finished"
        )
