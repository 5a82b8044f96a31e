from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at module level: models and services need the app registry ready.
        from agents import signals as agent_signals
        from alerts import receivers, signals
        from alerts.observability import register_observability

        # alerts subscribes to agents' domain signals; agents never imports alerts.
        agent_signals.iteration_finished.connect(
            receivers.on_iteration_finished, dispatch_uid="alerts.monitor.iteration_finished"
        )
        agent_signals.learning_converged.connect(
            receivers.on_learning_converged, dispatch_uid="alerts.monitor.learning_converged"
        )
        signals.alert_raised.connect(receivers.on_alert_raised, dispatch_uid="alerts.notify.alert_raised")
        register_observability()
