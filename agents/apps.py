from django.apps import AppConfig

from agents.backtest import kernel
from agents.refiners import tpe_kernels
from agents.strategies import indicator_kernels
from config.warmup import register_warm_up


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at module level: it reads models, which need the app registry ready.
        from agents.observability import register_observability

        register_observability()
        register_warm_up("backtest kernel", kernel.warm_up)
        register_warm_up("indicator kernels", indicator_kernels.warm_up)
        register_warm_up("TPE kernels", tpe_kernels.warm_up)
