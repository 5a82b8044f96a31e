"""What agents contributes to /health and /metrics (registered from AgentsConfig.ready() into
config.observability.registry), and how its LLM refiner calls are counted."""

from django.db.models import Count
from prometheus_client.metrics_core import GaugeMetricFamily

from agents.models import IterationStatus, LearningIteration, TradingAgent
from agents.refiners.base import RefinerAuthError, RefinerError, RefinerUnavailable
from config.observability import metrics, registry

# Only these refiners call an LLM; Optuna is local and not counted.
LLM_REFINERS = frozenset({"claude"})
ACTIVE = (IterationStatus.QUEUED, IterationStatus.RUNNING)


def refiner_called(refiner_name, outcome):
    """`outcome`: the RefinerResult, the RefinerError raised, or "skipped_budget"; the tokens
    come from the result or the error."""
    if refiner_name not in LLM_REFINERS:
        return
    if isinstance(outcome, str):
        label = outcome
    elif isinstance(outcome, RefinerAuthError):
        label = "auth_error"
    elif isinstance(outcome, RefinerUnavailable):
        label = "unavailable"
    elif isinstance(outcome, RefinerError):
        label = "error"
    else:
        label = "success"
    metrics.llm_call_counted(label, input_tokens=getattr(outcome, "input_tokens", 0) or 0,
                             output_tokens=getattr(outcome, "output_tokens", 0) or 0)


def _active_counts():
    return dict(
        LearningIteration.objects.filter(status__in=ACTIVE).order_by().values_list("status").annotate(n=Count("pk"))
    )


def iteration_counts():
    """The /health fact "iterations": how many are running and queued."""
    rows = _active_counts()
    return {"running": rows.get(IterationStatus.RUNNING, 0), "queued": rows.get(IterationStatus.QUEUED, 0)}


def collect_gauges():
    agents = GaugeMetricFamily("lab_agents", "Agents by status and learning state.",
                               labels=["status", "continuous_state"])
    for row in TradingAgent.objects.order_by().values("status", "continuous_state").annotate(n=Count("pk")):
        agents.add_metric([row["status"], row["continuous_state"]], row["n"])
    active = GaugeMetricFamily("lab_iterations_active", "Iterations queued or running.", labels=["status"])
    counts = _active_counts()
    for status in ACTIVE:
        active.add_metric([status.value], counts.get(status.value, 0))
    yield from (agents, active)


def register_observability():
    registry.register_health_fact("iterations", iteration_counts)
    registry.register_gauges("agents", collect_gauges)
