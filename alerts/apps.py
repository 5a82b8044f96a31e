from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # alerts subscribes to agents' domain signals; agents never imports alerts.
        from agents import signals
        from alerts import receivers

        signals.iteration_finished.connect(
            receivers.on_iteration_finished, dispatch_uid="alerts.monitor.iteration_finished"
        )
        signals.learning_converged.connect(
            receivers.on_learning_converged, dispatch_uid="alerts.monitor.learning_converged"
        )
