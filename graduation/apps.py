from django.apps import AppConfig


class GraduationConfig(AppConfig):
    name = "graduation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # graduation subscribes to agents' domain signals; agents never imports graduation.
        # alerts is installed before graduation, so its monitor receives iteration_finished
        # first and the degradation check here sees the alert it raised.
        from agents import signals
        from graduation import receivers
        from graduation.criteria import check_defaults

        check_defaults()
        signals.iteration_finished.connect(
            receivers.on_iteration_finished, dispatch_uid="graduation.iteration_finished"
        )
        signals.refinement_applied.connect(
            receivers.on_refinement_applied, dispatch_uid="graduation.refinement_applied"
        )
