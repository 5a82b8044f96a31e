"""The lab-wide daily budget of Claude calls and tokens.

Counted from today's iteration rows (day boundary: midnight in settings.TIME_ZONE) whose
refiner was Claude, or that tried Claude and fell back (they spent tokens too). Over budget,
iterations use Optuna and the activity log says so.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from agents.models import LearningIteration


@dataclass(frozen=True)
class BudgetState:
    calls: int
    tokens: int
    max_calls: int
    max_tokens: int

    @property
    def exhausted(self):
        return self.calls >= self.max_calls or self.tokens >= self.max_tokens

    def describe(self):
        return (
            f"LLM daily budget exhausted: {self.calls}/{self.max_calls} Claude calls, "
            f"{self.tokens}/{self.max_tokens} tokens today"
        )


def start_of_today(now=None):
    local = timezone.localtime(now or timezone.now())
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def budget_state(now=None):
    used = LearningIteration.objects.filter(
        Q(refiner_used="claude") | Q(llm_input_tokens__gt=0),
        started_at__gte=start_of_today(now),
    ).aggregate(calls=Count("id"), tokens=Sum("llm_input_tokens") + Sum("llm_output_tokens"))
    return BudgetState(
        calls=used["calls"] or 0,
        tokens=used["tokens"] or 0,
        max_calls=settings.LAB_LLM_DAILY_CALLS,
        max_tokens=settings.LAB_LLM_DAILY_TOKENS,
    )
