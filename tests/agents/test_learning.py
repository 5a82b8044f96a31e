import math

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings
from scipy import stats as sps

from agents.backtest.engine import run_backtest
from agents.evaluation.protocol import EvaluationError
from agents.market.cache import load_bars, mark_bars_changed
from agents.market.models import PriceBar
from agents.models import (
    ActivityLog,
    ExamPurpose,
    ExamReading,
    IterationStatus,
    IterationTrigger,
    LearningIteration,
    Refinement,
    RefinementStatus,
    Trade,
)
from agents.services import dispatch, iteration_evaluation, learning
from agents.strategies.registry import get_template
from tests.factories import InstrumentFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


def run_one(agent, trigger=IterationTrigger.MANUAL):
    iteration, created = learning.iteration_run_now(agent, trigger=trigger)
    assert created
    return iteration


# --- the protocol, computed here from its definition (agents/evaluation/protocol.py) ---------------
def cut(n, test_fraction=0.2, k=5):
    """(fold slices, test slice): the newest floor(n f) bars are the exam; the older ones K equal
    contiguous folds, the oldest n_sel mod K bars only warm up."""
    n_test = int(n * test_fraction)
    n_sel = n - n_test
    fold = n_sel // k
    first = n_sel - fold * k
    return [slice(first + i * fold, first + (i + 1) * fold) for i in range(k)], slice(n_sel, n)


def backtest(agent, params, window):
    """The agent's backtest of ``params`` on bars ``window``, warmed up on all earlier bars."""
    bars = load_bars(agent.instrument_id)
    template = get_template(agent.strategy_template)
    clean = template.validate(params)
    target = template.target_positions(bars, clean)
    return run_backtest(
        bars.slice(window.start, window.stop), target[window], fee_bps=agent.fee_bps,
        slippage_bps=agent.slippage_bps, bars_per_year=agent.instrument.bars_per_year,
        stop_loss=clean.get("stop_loss", 0.0), take_profit=clean.get("take_profit", 0.0),
        initial_capital=agent.initial_capital,
    )


def ref_selection_score(fold_scores):
    s = np.asarray(fold_scores, dtype=float)
    return s.mean() - s.std(ddof=1) / math.sqrt(len(s))


def stitched_returns(agent, params, folds):
    return np.concatenate([backtest(agent, params, f).returns[1:] for f in folds])


def ref_dsr(sr, t, skew, kurt, n, v):
    g = np.euler_gamma
    sr0 = math.sqrt(v) * ((1 - g) * sps.norm.ppf(1 - 1 / n) + g * sps.norm.ppf(1 - 1 / (n * math.e)))
    return sps.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def test_iteration_runs_the_whole_pipeline():
    agent = make_agent(candidates_per_iteration=5)
    iteration = run_one(agent)

    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    assert iteration.number == 1
    assert iteration.version_id == agent.current_version_id
    assert iteration.refiner_used == "optuna"
    # 600 bars: the newest 120 are the sealed test window, the 480 before them 5 folds of 96.
    assert set(iteration.windows) == {"folds", "test", "selection"}
    assert [f["bars"] for f in iteration.windows["folds"]] == [96] * 5
    assert [f["first"] for f in iteration.windows["folds"]] == [0, 96, 192, 288, 384]
    assert iteration.windows["test"]["bars"] == 120 and iteration.windows["test"]["first"] == 480
    assert iteration.windows["selection"]["bars"] == 480
    assert iteration.windows["folds"][-1]["end"] < iteration.windows["test"]["start"]
    folds, test = cut(600)
    params = agent.current_version.params

    # The headline: the objective on the sealed test window, backtested here on its own.
    sealed = backtest(agent, params, test)
    assert iteration.score == pytest.approx(sealed.metrics["sharpe"], rel=1e-9, abs=1e-12)
    assert iteration.validation_metrics == pytest.approx(sealed.metrics, rel=1e-9, abs=1e-12)
    assert Trade.objects.filter(iteration=iteration).count() == len(sealed.trades)
    assert iteration.evidence["test_trades"] == len(sealed.trades) and iteration.evidence["test_bars"] == 120
    # Selection: every fold on its own, and their aggregate mean - sd / sqrt(K).
    fold_sharpes = [backtest(agent, params, f).metrics["sharpe"] for f in folds]
    assert [m["sharpe"] for m in iteration.fold_metrics] == pytest.approx(fold_sharpes, rel=1e-9, abs=1e-12)
    assert iteration.selection_score == pytest.approx(ref_selection_score(fold_sharpes), rel=1e-9, abs=1e-12)
    returns = stitched_returns(agent, params, folds)
    assert iteration.selection_sharpe == pytest.approx(returns.mean() / returns.std(ddof=1), rel=1e-9)
    assert iteration.evidence["selection_bars"] == len(returns) == 480 - 5
    assert iteration.improvement is None  # nothing to compare the first one with

    refinements = list(Refinement.objects.filter(iteration=iteration).order_by("id"))
    assert len(refinements) == 5
    for r in refinements:
        assert r.status == RefinementStatus.PENDING and r.train_metrics and len(r.fold_metrics) == 5
        assert r.score == pytest.approx(ref_selection_score([m["sharpe"] for m in r.fold_metrics]), abs=1e-12)
        # Auto-approval is off: nobody read the exam for a candidate.
        assert r.test_score is None and r.validation_metrics == {}
        assert r.criteria_results and not any(c["criterion"] == "max_test_shortfall" for c in r.criteria_results)
    assert iteration.best_candidate_score == pytest.approx(max(r.score for r in refinements))
    # The exam was read once, for the version's headline, and that reading is on record.
    (reading,) = ExamReading.objects.filter(agent=agent)
    assert (reading.purpose, reading.version_id, reading.iteration_id) == (
        ExamPurpose.REPORT, agent.current_version_id, iteration.pk)
    assert reading.bars == 120 and reading.score == pytest.approx(iteration.score)
    assert ActivityLog.objects.filter(agent=agent, event="iteration_succeeded").count() == 1


def test_deflated_sharpe_and_trial_count_of_an_iteration():
    """N = distinct parameter sets evaluated on the selection data, V = the variance of their per-bar
    selection Sharpe ratios; the DSR of the version is checked against the paper's formula (scipy)."""
    agent = make_agent(candidates_per_iteration=6)
    iteration = run_one(agent)
    folds, _test = cut(600)
    template = get_template(agent.strategy_template)
    sets = {}
    for params in [agent.current_version.params] + [r.proposed_params for r in iteration.refinements.all()]:
        clean = template.validate(params)
        sets[tuple(sorted(clean.items()))] = clean
    sharpes = []
    for clean in sets.values():
        r = stitched_returns(agent, clean, folds)
        sharpes.append(r.mean() / r.std(ddof=1))
    n, cross = len(sets), float(np.var(sharpes, ddof=1))
    assert iteration.n_trials == n >= 5
    assert iteration.evidence["trials_sharpe_variance"] == pytest.approx(cross, rel=1e-9)
    returns = stitched_returns(agent, agent.current_version.params, folds)
    t = len(returns)
    # V: the trials' variance, capped at what luck gives a Sharpe on T bars, 1 / (T - 1).
    v = min(cross, 1 / (t - 1))
    assert iteration.evidence["null_sharpe_variance"] == pytest.approx(1 / (t - 1))
    assert iteration.evidence["dsr_variance"] == pytest.approx(v, rel=1e-9)
    sr = returns.mean() / returns.std(ddof=1)
    skew, kurt = sps.skew(returns, bias=True), sps.kurtosis(returns, fisher=False, bias=True)
    assert iteration.dsr == pytest.approx(ref_dsr(sr, t, skew, kurt, n, v), rel=1e-9, abs=1e-12)
    assert 0.0 <= iteration.pbo <= 1.0 and iteration.evidence["pbo_trials"] == n
    # The second iteration counts the first one's trials too.
    second = run_one(agent)
    assert second.n_trials > n


def two_agents_sharing_the_selection_bars():
    """Two instruments whose first 480 bars are equal and whose sealed 120 differ."""
    a = random_walk_bars(InstrumentFactory(), n=600, seed=3)
    b = InstrumentFactory()
    rows = list(PriceBar.objects.filter(instrument=a).order_by("timestamp"))
    rng = np.random.default_rng(99)
    for i, bar in enumerate(rows[480:]):
        factor = float(np.exp(-0.004 * (i + 1) + rng.normal(0, 0.01)))  # another future
        bar.open, bar.high, bar.low, bar.close = (x * factor for x in (bar.open, bar.high, bar.low, bar.close))
    PriceBar.objects.bulk_create([
        PriceBar(instrument=b, timestamp=r.timestamp, open=r.open, high=r.high, low=r.low, close=r.close,
                 volume=r.volume) for r in rows
    ])
    mark_bars_changed(b.pk)
    return (make_agent(instrument=i, random_seed=11, candidates_per_iteration=5) for i in (a, b))


def test_the_search_never_sees_the_sealed_window(monkeypatch):
    seen = []
    real = learning._propose

    def spy(agent, context):
        seen.append(context)
        return real(agent, context)

    monkeypatch.setattr(learning, "_propose", spy)
    first, second = two_agents_sharing_the_selection_bars()
    one, two = run_one(first), run_one(second)
    assert one.status == two.status == IterationStatus.SUCCEEDED
    assert one.score != pytest.approx(two.score)  # different exams...
    # ... and yet the refiner saw the same thing, proposed the same candidates, ranked them the same.
    a, b = seen
    assert (a.fold_metrics, a.selection_score, a.recent_trades) == (b.fold_metrics, b.selection_score, b.recent_trades)
    assert a.fold_metrics == one.fold_metrics and a.selection_score == one.selection_score
    test_start = one.windows["test"]["start"]
    assert a.recent_trades and all(t["exit_time"] < test_start for t in a.recent_trades)
    for x, y in zip(one.refinements.order_by("id"), two.refinements.order_by("id"), strict=True):
        assert x.proposed_params == y.proposed_params and x.score == y.score
        assert x.criteria_results == y.criteria_results
    assert one.selection_score == two.selection_score and one.dsr == two.dsr


def test_second_iteration_records_improvement_and_continues_numbering():
    agent = make_agent()
    first = run_one(agent)
    second = run_one(agent)
    assert second.number == 2
    # Same version on the same bars: the score is unchanged, so the improvement is exactly 0.
    assert second.score == pytest.approx(first.score)
    assert second.selection_score == pytest.approx(first.selection_score)
    assert second.improvement == pytest.approx(0.0)
    # The exam is read (and counted) once per iteration for the headline.
    assert ExamReading.objects.filter(agent=agent, purpose=ExamPurpose.REPORT).count() == 2


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

    def flaky(*args, **kwargs):  # the candidates' batch (the current version is evaluated alone)
        raise EvaluationError("bad bar data")

    monkeypatch.setattr(iteration_evaluation, "evaluate_selections", flaky)
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
