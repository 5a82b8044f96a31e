import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from agents.evaluation.protocol import EvaluationError
from agents.models import (
    ActivityLog,
    IterationStatus,
    IterationTrigger,
    LearningIteration,
    Refinement,
    RefinementStatus,
    Trade,
)
from agents.services import dispatch, iteration_evaluation, learning
from tests.factories import InstrumentFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


def run_one(agent, trigger=IterationTrigger.MANUAL):
    iteration, created = learning.iteration_run_now(agent, trigger=trigger)
    assert created
    return iteration


def test_iteration_runs_the_whole_pipeline():
    agent = make_agent(candidates_per_iteration=5)
    iteration = run_one(agent)

    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    assert iteration.number == 1
    assert iteration.version_id == agent.current_version_id
    assert iteration.refiner_used == "optuna"
    assert set(iteration.windows) == {"train", "validation"}
    assert iteration.windows["train"]["bars"] == 420 and iteration.windows["validation"]["bars"] == 180
    assert iteration.score == pytest.approx(iteration.validation_metrics["sharpe"])
    assert iteration.improvement is None  # nothing to compare the first one with
    refinements = list(Refinement.objects.filter(iteration=iteration))
    assert len(refinements) == 5
    assert all(r.status == RefinementStatus.PENDING and r.validation_metrics and r.train_metrics for r in refinements)
    assert iteration.best_candidate_score == pytest.approx(max(r.score for r in refinements))
    assert Trade.objects.filter(iteration=iteration).count() == iteration.validation_metrics["num_trades"]
    assert ActivityLog.objects.filter(agent=agent, event="iteration_succeeded").count() == 1


def test_second_iteration_records_improvement_and_continues_numbering():
    agent = make_agent()
    first = run_one(agent)
    second = run_one(agent)
    assert second.number == 2
    # Same version on the same bars: the score is unchanged, so the improvement is exactly 0.
    assert second.score == pytest.approx(first.score)
    assert second.improvement == pytest.approx(0.0)


def test_improvement_definition():
    assert learning.improvement_between(1.1, 1.0) == pytest.approx(0.1)
    assert learning.improvement_between(-0.5, -1.0) == pytest.approx(0.5)
    assert learning.improvement_between(0.2, 0.0) == pytest.approx(0.2)
    assert learning.improvement_between(None, 1.0) is None


def test_too_few_bars_fails_cleanly_with_a_readable_error():
    instrument = random_walk_bars(InstrumentFactory(), n=30)
    agent = make_agent(instrument=instrument)
    iteration = run_one(agent)
    assert iteration.status == IterationStatus.FAILED
    assert "not enough bars" in iteration.error
    assert not Refinement.objects.filter(iteration=iteration).exists()
    assert not Trade.objects.filter(iteration=iteration).exists()
    assert ActivityLog.objects.filter(agent=agent, event="iteration_failed").exists()


def test_failure_while_finishing_leaves_no_partial_rows(monkeypatch):
    agent = make_agent()

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(learning, "_after_success_hooks", explode)
    iteration = run_one(agent)
    assert iteration.status == IterationStatus.FAILED
    assert "disk on fire" in iteration.error
    assert not Refinement.objects.filter(iteration=iteration).exists()
    assert not Trade.objects.filter(iteration=iteration).exists()
    assert not LearningIteration.objects.filter(status=IterationStatus.RUNNING).exists()


def test_failure_in_a_candidate_backtest_fails_the_iteration(monkeypatch):
    agent = make_agent()
    calls = {"n": 0}
    real = iteration_evaluation.evaluate_selection

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise EvaluationError("bad bar data")
        return real(*args, **kwargs)

    monkeypatch.setattr(iteration_evaluation, "evaluate_selection", flaky)
    iteration = run_one(agent)
    assert iteration.status == IterationStatus.FAILED
    assert "bad bar data" in iteration.error


def test_running_an_iteration_twice_is_a_no_op():
    agent = make_agent()
    iteration, _ = dispatch.iteration_queue(agent, trigger=IterationTrigger.SCHEDULE)
    learning.iteration_run(iteration.pk)
    learning.iteration_run(iteration.pk)
    assert Refinement.objects.filter(iteration=iteration).count() == agent.candidates_per_iteration
    assert ActivityLog.objects.filter(agent=agent, event="iteration_succeeded").count() == 1


def test_a_trigger_while_one_is_active_joins_it():
    agent = make_agent()
    first, created = dispatch.iteration_queue(agent, trigger=IterationTrigger.API)
    again, created_again = dispatch.iteration_queue(agent, trigger=IterationTrigger.SCHEDULE)
    assert created and not created_again
    assert again.pk == first.pk
    assert LearningIteration.objects.filter(agent=agent).count() == 1


def test_idempotency_key_returns_the_same_iteration_after_it_ran():
    agent = make_agent()
    first, _ = dispatch.iteration_queue(agent, trigger=IterationTrigger.SCHEDULE, idempotency_key="slot-1")
    learning.iteration_run(first.pk)
    again, created = dispatch.iteration_queue(agent, trigger=IterationTrigger.SCHEDULE, idempotency_key="slot-1")
    assert not created and again.pk == first.pk


def test_database_refuses_two_running_iterations_for_one_agent():
    agent = make_agent()
    LearningIteration.objects.create(agent=agent, number=1, status=IterationStatus.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        LearningIteration.objects.create(agent=agent, number=2, status=IterationStatus.RUNNING)


@override_settings(LAB_MAX_CONCURRENT_ITERATIONS=1)
def test_lab_wide_cap_defers_instead_of_dropping():
    busy = make_agent()
    LearningIteration.objects.create(agent=busy, number=1, status=IterationStatus.RUNNING)
    agent = make_agent()
    iteration, _ = dispatch.iteration_queue(agent, trigger=IterationTrigger.SCHEDULE)
    with pytest.raises(dispatch.IterationDeferred):
        learning.iteration_run(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.status == IterationStatus.QUEUED


def _fake_history(agent, n):
    """n prior succeeded iterations, each with 2 refinements."""
    iterations = LearningIteration.objects.bulk_create(
        [
            LearningIteration(agent=agent, number=i + 1, status=IterationStatus.SUCCEEDED, score=0.1,
                              version=agent.current_version, validation_metrics={"sharpe": 0.1})
            for i in range(n)
        ]
    )
    Refinement.objects.bulk_create(
        [
            Refinement(iteration=it, agent=agent, proposed_params={**agent.current_version.params,
                                                                     "fast": 5 + (it.number % 20)},
                       source="optuna", score=0.05, status=RefinementStatus.REJECTED)
            for it in iterations
            for _ in range(2)
        ]
    )


@pytest.mark.parametrize("history", [1, 500])
def test_queries_per_iteration_do_not_grow_with_history(history, django_assert_max_num_queries):
    agent = make_agent(candidates_per_iteration=8)
    _fake_history(agent, history)
    from agents.market.cache import load_bars

    load_bars(agent.instrument_id)  # warm cache, as in a worker
    with django_assert_max_num_queries(30):
        iteration = run_one(agent)
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
