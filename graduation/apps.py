from django.apps import AppConfig


class GraduationConfig(AppConfig):
    name = "graduation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # graduation subscribes to the domain signals of agents and alerts; neither imports
        # graduation. Imported here, not at module level: they need the app registry ready.
        from agents import signals as agent_signals
        from alerts import signals as alert_signals
        from graduation import receivers
        from graduation.criteria import check_defaults

        check_defaults()
        agent_signals.iteration_finished.connect(
            receivers.on_iteration_finished, dispatch_uid="graduation.iteration_finished"
        )
        agent_signals.refinement_applied.connect(
            receivers.on_refinement_applied, dispatch_uid="graduation.refinement_applied"
        )
        # Demotion follows the CRITICAL degradation alert itself, not the order in which the
        # receivers of iteration_finished run.
        alert_signals.alert_raised.connect(receivers.on_alert_raised, dispatch_uid="graduation.alert_raised")
