import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from agents.backtest.engine import run_backtest
from agents.evaluation.statistics import SharpeStats
from agents.evaluation.trials import Population
from agents.market.cache import load_bars
from agents.models import (
    ActivityLog,
    AgentStatus,
    ExamPurpose,
    ExamReading,
    IterationStatus,
    Refinement,
    RefinementStatus,
    StrategyVersion,
    TradingAgent,
    VersionOrigin,
)
from agents.services import approval, approval_gate, decisions, learning, manual_approval
from agents.strategies.registry import get_template
from core.errors import Conflict, ValidationFailed
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db

# Every candidate of a random walk passes these: the evidence rules are off (DSR >= 0, p <= 1, any
# shortfall on the sealed window, one fold) and the metric rules are at their loosest.
LOOSE = {
    "min_win_rate": 0.0,
    "min_sharpe_ratio": -10.0,
    "min_signals": 0,
    "min_total_return": -1.0,
    "require_improvement": False,
    "min_dsr": 0.0,
    "max_improvement_p": 1.0,
    "max_test_shortfall": 100.0,
    "min_fold_pass": 1,
}
CORE_KEYS = ("min_win_rate", "min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement")
# No candidate passes these.
STRICT = {**LOOSE, "min_sharpe_ratio": 10.0, "min_signals": 1_000_000}
# The rows the selection rules yield under LOOSE (max_drawdown off, require_improvement off).
SELECTION_ROWS = ["min_dsr", "max_improvement_p", "min_win_rate", "min_sharpe_ratio", "min_signals",
                  "min_total_return"]


def auto_agent(thresholds, **kwargs):
    agent = make_agent(**kwargs)
    approval.thresholds_set(agent, thresholds, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)
    return agent


def run(agent):
    iteration, created = learning.iteration_run_now(agent, trigger="manual")
    assert created and iteration.status == IterationStatus.SUCCEEDED, iteration.error
    return iteration


def refinements(iteration):
    """The iteration's candidates; none is a failure, since the tests check each with all(...) or a loop."""
    found = list(Refinement.objects.filter(iteration=iteration).order_by("id"))
    assert found, f"iteration {iteration.number} proposed no refinement"
    return found


def criteria(refinement):
    return {c["criterion"]: c for c in refinement.criteria_results}


def sealed_score(agent, params):
    """The objective of ``params`` on the newest 20% of the bars, backtested here on its own
    (targets from all bars, so indicators warm up on earlier ones only)."""
    bars = load_bars(agent.instrument_id)
    template = get_template(agent.strategy_template)
    clean = template.validate(params)
    target = template.target_positions(bars, clean)
    start = len(bars) - int(len(bars) * agent.test_fraction)
    result = run_backtest(bars.slice(start, len(bars)), target[start:], fee_bps=agent.fee_bps,
                          slippage_bps=agent.slippage_bps, bars_per_year=agent.instrument.bars_per_year,
                          stop_loss=clean.get("stop_loss", 0.0), take_profit=clean.get("take_profit", 0.0),
                          initial_capital=agent.initial_capital)
    return result.metrics[agent.objective]


# --- threshold validation ---------------------------------------------------------------------
def test_defaults_are_valid():
    assert approval.DEFAULT_THRESHOLDS == {
        "min_dsr": 0.95, "max_improvement_p": 0.05, "max_test_shortfall": 0.25, "min_fold_pass": 3,
        "min_win_rate": 0.4, "min_sharpe_ratio": 0.5, "min_signals": 5, "min_total_return": 0.0,
        "require_improvement": True, "max_drawdown": None,
    }
    assert approval.validate_thresholds(dict(approval.DEFAULT_THRESHOLDS)) == approval.DEFAULT_THRESHOLDS


def test_full_replace_merges_over_defaults_and_cleans_types():
    clean = approval.validate_thresholds({**LOOSE, "min_signals": 7.0, "min_fold_pass": 2.0, "max_drawdown": 0.3})
    assert clean == {**LOOSE, "min_signals": 7, "min_fold_pass": 2, "max_drawdown": 0.3}
    assert isinstance(clean["min_signals"], int) and isinstance(clean["min_fold_pass"], int)
    assert approval.validate_thresholds(LOOSE)["max_drawdown"] is None  # optional: no limit
    core_only = approval.validate_thresholds({k: LOOSE[k] for k in CORE_KEYS})
    assert {k: core_only[k] for k in ("min_dsr", "max_improvement_p", "max_test_shortfall", "min_fold_pass")} == {
        "min_dsr": 0.95, "max_improvement_p": 0.05, "max_test_shortfall": 0.25, "min_fold_pass": 3}
    edges = approval.validate_thresholds({"min_win_rate": 1, "min_sharpe_ratio": -10, "min_signals": 0,
                                          "min_total_return": -1, "require_improvement": False, "max_drawdown": 1,
                                          "min_dsr": 1, "max_improvement_p": 1, "max_test_shortfall": 0,
                                          "min_fold_pass": 20})
    assert (edges["max_drawdown"], edges["min_dsr"], edges["max_improvement_p"], edges["max_test_shortfall"],
            edges["min_fold_pass"]) == (1.0, 1.0, 1.0, 0.0, 20)  # inclusive bounds


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("min_win_rate", 1.2, "between 0 and 1"),
        ("min_win_rate", -0.1, "between 0 and 1"),
        ("min_win_rate", "0.5", "must be a number"),
        ("min_win_rate", True, "must be a number"),
        ("min_win_rate", None, "must be a number"),
        ("min_win_rate", math.nan, "must be a number"),
        ("min_sharpe_ratio", 11, "between -10 and 10"),
        ("min_sharpe_ratio", -math.inf, "must be a number"),
        ("min_sharpe_ratio", [1], "must be a number"),
        ("min_signals", -1, "an integer between 0 and 1000000"),
        ("min_signals", 2.5, "an integer between 0 and 1000000"),
        ("min_signals", False, "an integer between 0 and 1000000"),
        ("min_signals", 10**400, "an integer between 0 and 1000000"),
        ("min_signals", 2_000_000, "an integer between 0 and 1000000"),
        ("min_total_return", -1.5, ">= -1"),
        ("min_total_return", math.inf, "must be a number"),
        ("require_improvement", 1, "true or false"),
        ("require_improvement", "yes", "true or false"),
        ("max_drawdown", 0, "greater than 0 and at most 1"),
        ("max_drawdown", 1.01, "greater than 0 and at most 1"),
        ("max_drawdown", True, "greater than 0 and at most 1"),
        ("min_dsr", 1.5, "between 0 and 1"),
        ("min_dsr", -0.01, "between 0 and 1"),
        ("min_dsr", None, "between 0 and 1"),
        ("max_improvement_p", 0, "greater than 0 and at most 1"),
        ("max_improvement_p", 1.5, "greater than 0 and at most 1"),
        ("max_test_shortfall", -0.1, "between 0 and 100"),
        ("max_test_shortfall", math.nan, "between 0 and 100"),
        ("min_fold_pass", 0, "an integer between 1 and 20"),
        ("min_fold_pass", 21, "an integer between 1 and 20"),
        ("min_fold_pass", 2.5, "an integer between 1 and 20"),
        ("min_fold_pass", True, "an integer between 1 and 20"),
    ],
)
def test_each_rule_alone_names_the_field(name, value, rule):
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds({**LOOSE, name: value})
    assert list(exc.value.errors) == [name]
    assert rule in exc.value.errors[name]


def test_unknown_keys_are_refused_and_the_known_ones_listed():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds({**LOOSE, "min_sharp_ratio": 1.0})
    assert list(exc.value.errors) == ["min_sharp_ratio"]
    assert "unknown name" in exc.value.errors["min_sharp_ratio"]
    for known in approval.DEFAULT_THRESHOLDS:
        assert known in exc.value.errors["min_sharp_ratio"]


def test_full_replace_requires_each_seed_threshold_but_partial_does_not():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds({"min_win_rate": 0.5, "min_dsr": 0.5})
    assert set(exc.value.errors) == {"min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement"}
    assert approval.validate_thresholds({"min_win_rate": 0.5}, partial=True) == {
        **approval.DEFAULT_THRESHOLDS, "min_win_rate": 0.5
    }


def test_every_error_is_reported_at_once():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds(
            {"min_win_rate": 2, "min_sharpe_ratio": "high", "min_signals": -3, "min_total_return": -2,
             "require_improvement": "no", "max_drawdown": 5, "min_dsr": 2, "max_improvement_p": 0,
             "max_test_shortfall": -1, "min_fold_pass": 0, "foo": 1}
        )
    assert set(exc.value.errors) == {*approval.DEFAULT_THRESHOLDS, "foo"}


def test_a_non_object_is_refused():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds([0.4])
    assert "thresholds" in exc.value.errors


def test_bad_input_changes_nothing():
    agent = make_agent()
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    logged = ActivityLog.objects.filter(agent=agent).count()
    with pytest.raises(ValidationFailed):
        approval.thresholds_set(agent, {**LOOSE, "min_win_rate": 0.9, "min_signals": -1}, actor=agent.owner)
    with pytest.raises(ValidationFailed):
        approval.thresholds_set(agent, {"min_win_rate": 0.9, "bogus": 1}, actor=agent.owner, partial=True)
    with pytest.raises(ValidationFailed):
        approval.thresholds_set(agent, {"min_dsr": 0.5, "min_fold_pass": 0}, actor=agent.owner, partial=True)
    agent.refresh_from_db()
    assert agent.approval_thresholds == {**LOOSE, "max_drawdown": None}
    assert ActivityLog.objects.filter(agent=agent).count() == logged


def test_thresholds_set_logs_the_change_and_partial_keeps_the_rest():
    agent = make_agent()
    assert approval.effective_thresholds(agent) == approval.DEFAULT_THRESHOLDS
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    approval.thresholds_set(agent, {"max_drawdown": 0.2, "min_dsr": 0.9}, actor=agent.owner, partial=True)
    agent.refresh_from_db()
    assert approval.effective_thresholds(agent) == {**LOOSE, "max_drawdown": 0.2, "min_dsr": 0.9}
    log = ActivityLog.objects.filter(agent=agent, event="approval_thresholds_set").first()
    assert log.actor == agent.owner
    assert log.details["changed"] == {"max_drawdown": {"from": None, "to": 0.2}, "min_dsr": {"from": 0.0, "to": 0.9}}
    assert "max_drawdown no limit -> 0.2" in log.message and "min_dsr 0 -> 0.9" in log.message


def test_a_bad_stored_threshold_falls_back_to_its_default():
    agent = make_agent()
    TradingAgent.objects.filter(pk=agent.pk).update(
        approval_thresholds={"min_win_rate": "high", "min_signals": 3, "foo": 1, "max_drawdown": 9,
                             "min_dsr": 2.0, "min_fold_pass": 2}
    )
    agent.refresh_from_db()
    assert approval.effective_thresholds(agent) == {**approval.DEFAULT_THRESHOLDS, "min_signals": 3,
                                                    "min_fold_pass": 2}


def test_enable_and_disable_are_logged_once():
    agent = make_agent()
    approval.auto_approve_enable(agent, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)
    assert TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    approval.auto_approve_disable(agent, actor=agent.owner)
    assert not TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    events = list(ActivityLog.objects.filter(agent=agent, event__startswith="auto_approve_")
                  .order_by("id").values_list("event", flat=True))
    assert events == ["auto_approve_enabled", "auto_approve_disabled"]


# --- judging: the selection rules on fold evidence ----------------------------------------------
def fold(win_rate=0.5, sharpe=0.8, trades=2.0, total_return=0.02, drawdown=0.1):
    return {"win_rate": win_rate, "sharpe": sharpe, "num_trades": trades, "total_return": total_return,
            "max_drawdown": drawdown}


# Five folds: the Sharpe passes 0.5 in three (0.9, 0.6, 0.7); 8 trades in all, under 5 in every fold.
FOLDS = [fold(sharpe=0.9, trades=2.0), fold(sharpe=0.2, trades=1.0, drawdown=0.3), fold(sharpe=0.6, trades=2.0),
         fold(sharpe=0.7, trades=1.0, drawdown=0.25), fold(sharpe=0.1, trades=2.0)]
SELECTION = {"win_rate": 0.5, "sharpe": 0.55, "num_trades": 8.0, "total_return": 0.1, "max_drawdown": 0.3}
EVIDENCE = {"dsr": 0.97, "improvement_p": 0.01, "selection_score": 0.42, "current_selection_score": 0.30}


def judge(values=None, folds=FOLDS, selection=SELECTION, n_folds=None, **evidence):
    candidate = SimpleNamespace(fold_metrics=folds, metrics=selection)
    values = {**approval.DEFAULT_THRESHOLDS, **(values or {})}
    rows = approval_gate.judge_selection(values, candidate, {**EVIDENCE, **evidence}, n_folds or len(folds))
    return {r["criterion"]: r for r in rows}


def test_judge_selection_reports_every_rule_in_force_with_its_evidence():
    rows = judge({"max_drawdown": 0.28})
    assert list(rows) == ["min_dsr", "max_improvement_p", "min_win_rate", "min_sharpe_ratio", "min_signals",
                          "min_total_return", "max_drawdown", "require_improvement"]
    assert all(r["passed"] for r in rows.values())
    assert {k: rows["min_dsr"][k] for k in ("required", "actual", "evidence")} == {
        "required": 0.95, "actual": 0.97, "evidence": "value"}
    assert (rows["max_improvement_p"]["required"], rows["max_improvement_p"]["actual"]) == (0.05, 0.01)
    sharpe = rows["min_sharpe_ratio"]
    # Passes in 3 of 5 folds, as 3 are needed; actual is the 3rd best fold.
    assert (sharpe["folds_passed"], sharpe["folds"], sharpe["folds_needed"], sharpe["actual"]) == (3, 5, 3, 0.6)
    assert sharpe["fold_values"] == [0.9, 0.2, 0.6, 0.7, 0.1] and sharpe["evidence"] == "folds"
    # The number of trades is counted over the selection data as a whole: 8 >= 5 although no fold has 5.
    assert (rows["min_signals"]["actual"], rows["min_signals"]["evidence"]) == (8, "selection")
    # max_drawdown: the 3rd smallest fold drawdown (0.1, 0.1, 0.1, 0.25, 0.3).
    assert (rows["max_drawdown"]["actual"], rows["max_drawdown"]["folds_passed"]) == (0.1, 4)
    assert rows["require_improvement"]["actual"] == 0.42
    assert rows["require_improvement"]["required"] == "> current selection score 0.3"


def test_judge_selection_leaves_out_rules_not_in_force():
    rows = judge({"require_improvement": False, "max_drawdown": None})
    assert list(rows) == SELECTION_ROWS


def test_fold_rules_need_min_fold_pass_folds():
    assert judge({"min_fold_pass": 3})["min_sharpe_ratio"]["passed"]
    four = judge({"min_fold_pass": 4})["min_sharpe_ratio"]
    assert not four["passed"] and four["actual"] == 0.2 and four["folds_needed"] == 4
    one = judge({"min_fold_pass": 1, "min_sharpe_ratio": 0.9})["min_sharpe_ratio"]
    assert one["passed"] and one["actual"] == 0.9 and one["folds_passed"] == 1
    assert not judge({"min_fold_pass": 1, "min_sharpe_ratio": 0.91})["min_sharpe_ratio"]["passed"]


def test_min_fold_pass_is_capped_at_the_number_of_folds():
    two = [fold(sharpe=0.6), fold(sharpe=0.7)]
    row = judge({"min_fold_pass": 3}, folds=two)["min_sharpe_ratio"]
    assert row["passed"] and row["folds_needed"] == 2 and row["actual"] == 0.6
    assert not judge({"min_fold_pass": 3}, folds=[fold(sharpe=0.6), fold(sharpe=0.4)])["min_sharpe_ratio"]["passed"]


@pytest.mark.parametrize(
    ("values", "evidence", "criterion", "passed"),
    [
        ({}, {"dsr": 0.95}, "min_dsr", True),  # minimums are inclusive
        ({}, {"dsr": 0.9499}, "min_dsr", False),
        ({}, {"improvement_p": 0.05}, "max_improvement_p", True),  # so are maximums
        ({}, {"improvement_p": 0.0501}, "max_improvement_p", False),
        ({"min_signals": 8}, {}, "min_signals", True),
        ({"min_signals": 9}, {}, "min_signals", False),
        ({"min_win_rate": 0.5}, {}, "min_win_rate", True),
        ({"min_win_rate": 0.51}, {}, "min_win_rate", False),
        ({"min_total_return": 0.02}, {}, "min_total_return", True),
        ({"min_total_return": 0.021}, {}, "min_total_return", False),
        ({"max_drawdown": 0.1}, {}, "max_drawdown", True),  # 3 folds at 0.1
        ({"max_drawdown": 0.099}, {}, "max_drawdown", False),
    ],
)
def test_each_rule_at_its_boundary(values, evidence, criterion, passed):
    rows = judge(values, **evidence)
    assert rows[criterion]["passed"] is passed
    assert all(r["passed"] for name, r in rows.items() if name != criterion)


@pytest.mark.parametrize(("score", "current", "passed"), [(0.82, 0.81, True), (0.81, 0.81, False),
                                                          (-0.5, -0.4, False), (-0.3, -0.4, True)])
def test_improvement_is_strict_on_selection_scores(score, current, passed):
    row = judge(selection_score=score, current_selection_score=current)["require_improvement"]
    assert row["passed"] is passed and row["actual"] == score


@pytest.mark.parametrize("bad", [None, "0.5", True, math.nan, math.inf])
def test_a_missing_or_odd_metric_fails_its_rule_without_raising(bad):
    # In one fold only: that fold fails, the rule still passes in 3 of the other 4.
    rows = judge({"min_win_rate": 0.4}, folds=[fold(win_rate=bad), *FOLDS[1:]])
    assert rows["min_win_rate"]["fold_values"][0] is None and rows["min_win_rate"]["folds_passed"] == 4
    # In every fold: no evidence, so it fails with actual None.
    rows = judge(folds=[fold(win_rate=bad) for _ in range(5)], selection={**SELECTION, "num_trades": bad}, dsr=bad)
    for name in ("min_win_rate", "min_signals", "min_dsr"):
        assert rows[name]["actual"] is None and rows[name]["passed"] is False
    rows = judge(folds=[], selection=None, n_folds=5)
    assert not rows["min_sharpe_ratio"]["passed"] and not rows["min_signals"]["passed"]


@pytest.mark.parametrize(
    ("candidate", "current", "passed"),
    [(0.75, 1.0, True), (0.7499, 1.0, False), (1.4, 1.0, True), (-0.2, 0.0, True), (-0.3, 0.0, False)],
)
def test_the_sealed_rule_bounds_the_shortfall_against_the_current_version(candidate, current, passed):
    values = {**approval.DEFAULT_THRESHOLDS, "max_test_shortfall": 0.25}
    row = approval_gate.judge_sealed(values, candidate, current, {"readings": 7, "distinct_params": 4})
    assert row["criterion"] == "max_test_shortfall" and row["evidence"] == "test"
    assert row["actual"] == pytest.approx(current - candidate) and row["required"] == 0.25
    assert row["passed"] is passed
    assert (row["candidate_test_score"], row["current_test_score"]) == (candidate, current)
    assert (row["exam_readings"], row["exam_distinct_params"]) == (7, 4)


# --- the evidence: deflated Sharpe and the paired test, against reference computations -----------
def ref_dsr(sr, t, skew, kurt, n, v):
    """Bailey & Lopez de Prado (2014): PSR against the expected maximum Sharpe of N unskilled trials."""
    g = np.euler_gamma
    sr0 = math.sqrt(v) * ((1 - g) * sps.norm.ppf(1 - 1 / n) + g * sps.norm.ppf(1 - 1 / (n * math.e)))
    return sps.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def ref_improvement_p(a, b):
    """Jobson-Korkie with Memmel's correction, one-sided (H1: SR_a > SR_b)."""
    sr_a, sr_b = a.mean() / a.std(ddof=1), b.mean() / b.std(ddof=1)
    rho = sps.pearsonr(a, b).statistic
    theta = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / len(a)
    return sps.norm.sf((sr_a - sr_b) / math.sqrt(theta))


def population(n, *, cross, bars):
    """The trials' population as the gate reads it: V = min(cross-sectional variance, 1 / (T - 1))."""
    null = 1 / (bars - 1)
    return Population(n_trials=n, variance=min(cross, null), cross_variance=cross, null_variance=null,
                      n_with_sharpe=n)


def evaluation(returns, score):
    r = np.asarray(returns)
    stats = SharpeStats(r.mean() / r.std(ddof=1), len(r), sps.skew(r, bias=True),
                        sps.kurtosis(r, fisher=False, bias=True))
    return SimpleNamespace(returns=r, stats=stats, score=score)


def test_selection_evidence_matches_the_reference_formulas():
    rng = np.random.default_rng(5)
    common = rng.standard_normal(1000)
    current = evaluation(0.01 * (0.6 * common + 0.8 * rng.standard_normal(1000)), 0.2)
    candidate = evaluation(0.01 * (0.1 + 0.6 * common + 0.8 * rng.standard_t(5, 1000)), 0.9)
    pop = population(40, cross=0.0008, bars=1000)
    evidence = approval_gate.selection_evidence(candidate, current, pop)
    s = candidate.stats
    assert evidence["dsr"] == pytest.approx(ref_dsr(s.sr, s.t, s.skew, s.kurt, 40, 0.0008), rel=1e-9)
    assert evidence["improvement_p"] == pytest.approx(ref_improvement_p(candidate.returns, current.returns), rel=1e-9)
    assert evidence["improvement_p"] < 0.05 < evidence["dsr"]
    assert (evidence["n_trials"], evidence["trials_sharpe_variance"], evidence["selection_bars"]) == (
        40, 0.0008, 1000)
    assert (evidence["selection_score"], evidence["current_selection_score"]) == (0.9, 0.2)
    # More trials make the same Sharpe less convincing.
    more = approval_gate.selection_evidence(candidate, current, population(4000, cross=0.0008, bars=1000))
    assert more["dsr"] == pytest.approx(ref_dsr(s.sr, s.t, s.skew, s.kurt, 4000, 0.0008), rel=1e-9)
    assert more["dsr"] < evidence["dsr"]
    # A spread between trials beyond what luck gives on 1000 bars (1/999) is skill, not luck: V is capped.
    wide = approval_gate.selection_evidence(candidate, current, population(40, cross=0.02, bars=1000))
    assert wide["dsr"] == pytest.approx(ref_dsr(s.sr, s.t, s.skew, s.kurt, 40, 1 / 999), rel=1e-9)
    assert (wide["trials_sharpe_variance"], wide["dsr_variance"]) == (0.02, pytest.approx(1 / 999))


def test_a_candidate_against_itself_is_no_improvement():
    rng = np.random.default_rng(6)
    same = evaluation(0.01 * rng.standard_normal(500), 0.3)
    evidence = approval_gate.selection_evidence(same, same, population(2, cross=0.001, bars=500))
    assert evidence["improvement_p"] == 1.0


# --- auto-approval after real iterations ------------------------------------------------------
def readings(agent, purpose):
    return list(ExamReading.objects.filter(agent=agent, purpose=purpose).order_by("id"))


def test_loose_thresholds_apply_the_best_candidate_and_supersede_the_rest():
    agent = auto_agent(LOOSE, candidates_per_iteration=5)
    iteration = run(agent)

    refs = refinements(iteration)
    best = max(refs, key=lambda r: (r.score, -r.pk))  # the best selection score
    agent.refresh_from_db()
    version = agent.current_version
    assert version.number == 2 and version.origin == VersionOrigin.REFINEMENT
    assert version.params == best.proposed_params and version.created_by is None
    assert best.status == RefinementStatus.APPLIED and best.produced_version_id == version.pk
    assert best.decided_automatically and best.decided_by is None
    assert best.decision_reason.startswith("auto-approved: passed all 7 rules")
    # Only the best candidate was examined on the sealed window; its row is the last one.
    assert [c["criterion"] for c in best.criteria_results] == [*SELECTION_ROWS, "max_test_shortfall"]
    assert best.test_score == pytest.approx(sealed_score(agent, best.proposed_params), rel=1e-9, abs=1e-12)
    sealed = criteria(best)["max_test_shortfall"]
    assert sealed["candidate_test_score"] == pytest.approx(best.test_score)
    assert sealed["current_test_score"] == pytest.approx(iteration.score)
    assert sealed["actual"] == pytest.approx(iteration.score - best.test_score)
    assert (sealed["exam_readings"], sealed["exam_distinct_params"]) == (2, 1)
    others = [r for r in refs if r.pk != best.pk]
    assert {r.status for r in others} == {RefinementStatus.SUPERSEDED}
    for r in others:
        assert [c["criterion"] for c in r.criteria_results] == SELECTION_ROWS
        assert r.test_score is None and r.validation_metrics == {}
    for r in refs:
        assert all(c["passed"] for c in r.criteria_results)
        assert r.decided_at is not None and r.decided_automatically
    assert all(f"superseded by refinement {best.pk}" in r.decision_reason for r in others)
    # Two readings of the exam: the version's headline and the one look for the best candidate.
    (report,) = readings(agent, ExamPurpose.REPORT)
    (look,) = readings(agent, ExamPurpose.APPROVAL)
    assert report.version_id == iteration.version_id and look.refinement_id == best.pk
    assert look.score == pytest.approx(best.test_score)

    log = ActivityLog.objects.filter(agent=agent, actor_label="auto-approval")
    assert log.get(event="refinement_approved").details["criteria"] == best.criteria_results
    applied = log.get(event="refinement_applied")
    assert applied.details["refinement"] == best.pk and applied.actor is None
    assert log.filter(event="refinement_superseded").count() == len(others)
    superseded = log.filter(event="refinement_superseded").first()
    stored = Refinement.objects.get(pk=superseded.details["refinement"]).criteria_results
    assert superseded.details["criteria"] == stored
    summary = log.get(event="auto_approval")
    assert summary.details["approved"] == best.pk and summary.details["version"] == 2
    assert summary.details["superseded"] == len(others) and summary.details["rejected"] == 0
    assert summary.details["current_test_score"] == pytest.approx(iteration.score)

    # The applied version is what the next iteration evaluates: same folds, same exam, same scores.
    second = run(agent)
    assert second.version_id == version.pk
    assert second.selection_score == pytest.approx(best.score)
    assert second.score == pytest.approx(best.test_score)


def test_strict_thresholds_reject_everything_with_the_failed_rules():
    agent = auto_agent(STRICT)
    iteration = run(agent)

    assert StrategyVersion.objects.filter(agent=agent).count() == 1
    refs = refinements(iteration)
    assert refs and {r.status for r in refs} == {RefinementStatus.REJECTED}
    for r in refs:
        results = criteria(r)
        assert not results["min_sharpe_ratio"]["passed"] and not results["min_signals"]["passed"]
        assert results["min_win_rate"]["passed"] and results["min_dsr"]["passed"]
        assert "max_test_shortfall" not in results and r.test_score is None  # failed: never examined
        assert r.decision_reason.startswith("auto-rejected: failed min_sharpe_ratio ")
        assert "min_signals" in r.decision_reason and "min_win_rate" not in r.decision_reason
        assert r.decided_automatically
    assert readings(agent, ExamPurpose.APPROVAL) == []
    rejected = ActivityLog.objects.filter(agent=agent, event="refinement_rejected", actor_label="auto-approval")
    assert rejected.count() == len(refs)
    assert all(not all(c["passed"] for c in log.details["criteria"]) for log in rejected)
    summary = ActivityLog.objects.get(agent=agent, event="auto_approval")
    assert "none of" in summary.message and summary.details["approved"] is None


def twins(**settings_values):
    """A factory of agents on one instrument with one seed: each proposes the same candidates at its
    first iteration (the refiner sees the same context), whatever its thresholds."""
    instrument = random_walk_bars(InstrumentFactory(), seed=4)
    owner = UserFactory()

    def make(thresholds=None):
        agent = make_agent(owner=owner, instrument=instrument, random_seed=21, **settings_values)
        if thresholds is not None:
            approval.thresholds_set(agent, thresholds, actor=owner)
            approval.auto_approve_enable(agent, actor=owner)
        return agent

    return make


def test_the_sealed_window_is_read_in_rank_order_until_a_candidate_passes():
    make = twins(candidates_per_iteration=8)
    scout = make()
    first = run(scout)  # auto-approval off: nothing examined
    ranked = sorted(refinements(first), key=lambda r: (-r.score, r.pk))
    shortfall = [first.score - sealed_score(scout, r.proposed_params) for r in ranked]
    # The last candidate (in rank order) whose shortfall is below that of every candidate ranked above
    # it: with a limit just above it, all those ranked above fail the sealed rule and it passes.
    later = max(i for i in range(1, len(ranked)) if shortfall[i] < min(shortfall[:i]) - 1e-6)
    limit = (min(shortfall[:later]) + shortfall[later]) / 2
    assert all(s > limit for s in shortfall[:later]) and shortfall[later] <= limit
    assert later >= 2 and limit >= 0, "this seed should make several candidates fail the exam first"

    agent = make({**LOOSE, "max_test_shortfall": limit})
    iteration = run(agent)
    refs = sorted(refinements(iteration), key=lambda r: (-r.score, r.pk))
    assert [r.proposed_params for r in refs] == [r.proposed_params for r in ranked]
    looks = readings(agent, ExamPurpose.APPROVAL)
    assert [x.refinement_id for x in looks] == [r.pk for r in refs[: later + 1]]
    for i, r in enumerate(refs):
        rows = criteria(r)
        if i < later:  # examined and failed the sealed rule
            assert r.status == RefinementStatus.REJECTED and not rows["max_test_shortfall"]["passed"]
            assert rows["max_test_shortfall"]["actual"] == pytest.approx(shortfall[i], abs=1e-9)
            assert "max_test_shortfall" in r.decision_reason
        elif i == later:
            assert r.status == RefinementStatus.APPLIED and rows["max_test_shortfall"]["passed"]
        else:  # never examined: superseded by the applied one
            assert r.status == RefinementStatus.SUPERSEDED and "max_test_shortfall" not in rows
    # Each look is counted: the k-th look sees the report reading and k looks.
    counts = [criteria(r)["max_test_shortfall"]["exam_readings"] for r in refs[: later + 1]]
    assert counts == list(range(2, later + 3))


def test_thresholds_decide_between_the_candidates_of_one_iteration():
    """Thresholds set from the candidates' own fold Sharpes: the candidates whose best fold reaches the
    cut pass (one fold needed), the rest fail; the best passing one is applied."""
    make = twins(candidates_per_iteration=6)
    scout = run(make())
    best_fold = {tuple(sorted(r.proposed_params.items())): max(m["sharpe"] for m in r.fold_metrics)
                 for r in refinements(scout)}
    levels = sorted(set(best_fold.values()))
    assert len(levels) >= 3, "the refiner should propose distinct candidates"
    cut = levels[len(levels) // 2]

    agent = make({**LOOSE, "min_sharpe_ratio": cut})
    iteration = run(agent)
    refs = refinements(iteration)
    passing = [r for r in refs if best_fold[tuple(sorted(r.proposed_params.items()))] >= cut]
    failing = [r for r in refs if r not in passing]
    best = max(passing, key=lambda r: (r.score, -r.pk))
    summary = ActivityLog.objects.get(agent=agent, event="auto_approval").details
    assert {k: summary[k] for k in ("approved", "version", "judged", "passed", "superseded", "rejected")} == {
        "approved": best.pk, "version": 2, "judged": len(refs), "passed": len(passing),
        "superseded": len(passing) - 1, "rejected": len(failing)}
    assert best.status == RefinementStatus.APPLIED
    assert {r.status for r in passing if r.pk != best.pk} <= {RefinementStatus.SUPERSEDED}
    assert failing and {r.status for r in failing} == {RefinementStatus.REJECTED}
    assert all("min_sharpe_ratio" in r.decision_reason for r in failing)
    # Nothing pending is left, so running it again changes nothing.
    assert approval.iteration_auto_approve(iteration)["judged"] == 0


def test_default_thresholds_change_nothing_on_a_random_walk():
    """No edge to find: the deflated Sharpe and the paired test stop every candidate."""
    agent = auto_agent({k: approval.DEFAULT_THRESHOLDS[k] for k in CORE_KEYS}, candidates_per_iteration=6)
    for _ in range(3):
        iteration = run(agent)
        for r in refinements(iteration):
            rows = criteria(r)
            assert r.status == RefinementStatus.REJECTED
            assert rows["min_dsr"]["actual"] == pytest.approx(r.dsr)
            assert rows["min_dsr"]["passed"] is (r.dsr >= 0.95)
            assert rows["max_improvement_p"]["passed"] is (r.improvement_p <= 0.05)
            failed = [name for name, row in rows.items() if not row["passed"]]
            assert failed and all(name in r.decision_reason for name in failed)
    agent.refresh_from_db()
    assert agent.current_version.number == 1
    assert not Refinement.objects.filter(agent=agent, status=RefinementStatus.APPLIED).exists()


def test_require_improvement_compares_selection_scores():
    agent = auto_agent({**LOOSE, "require_improvement": True}, candidates_per_iteration=4)
    blocked_only_by_improvement = applied_count = 0
    for _ in range(3):
        iteration = run(agent)
        refs = refinements(iteration)
        beating = [r for r in refs if r.score > iteration.selection_score]
        for r in refs:
            results = criteria(r)
            assert results["require_improvement"]["required"] == (
                f"> current selection score {iteration.selection_score:.4g}")
            assert results["require_improvement"]["passed"] is (r.score > iteration.selection_score)
            if r not in beating:
                assert r.status == RefinementStatus.REJECTED
                assert "require_improvement" in r.decision_reason
                if all(c["passed"] for name, c in results.items() if name != "require_improvement"):
                    blocked_only_by_improvement += 1
        if beating:
            best = max(beating, key=lambda r: (r.score, -r.pk))
            assert best.status == RefinementStatus.APPLIED
            applied_count += 1
            agent.refresh_from_db()
            assert agent.current_version.params == best.proposed_params
        else:
            assert not any(r.status == RefinementStatus.APPLIED for r in refs)
    assert blocked_only_by_improvement > 0 and applied_count > 0  # both branches ran
    # Each applied version beat the selection score of the version it replaced.
    applied = list(Refinement.objects.filter(agent=agent, status=RefinementStatus.APPLIED))
    assert len(applied) == applied_count
    for refinement in applied:
        assert refinement.score > refinement.iteration.selection_score


@pytest.mark.parametrize(
    ("status", "reason"),
    [(AgentStatus.LIVE_TRADING, approval.LIVE_SKIP_REASON), (AgentStatus.PAPER_TRADING, approval.PAPER_SKIP_REASON)],
)
def test_trading_agents_are_judged_but_never_changed(status, reason):
    agent = auto_agent(LOOSE)
    TradingAgent.objects.filter(pk=agent.pk).update(status=status)
    agent.refresh_from_db()
    iteration = run(agent)

    agent.refresh_from_db()
    assert agent.current_version.number == 1
    assert StrategyVersion.objects.filter(agent=agent).count() == 1
    refs = refinements(iteration)
    assert {r.status for r in refs} == {RefinementStatus.PENDING}
    # Judged on the selection rules; the exam is not read for a candidate that cannot be applied.
    assert all([c["criterion"] for c in r.criteria_results] == SELECTION_ROWS for r in refs)
    assert all(all(c["passed"] for c in r.criteria_results) for r in refs)
    assert readings(agent, ExamPurpose.APPROVAL) == []
    assert all(reason in r.decision_reason and not r.decided_automatically for r in refs)
    skipped = ActivityLog.objects.get(agent=agent, event="auto_approval_skipped")
    assert skipped.message == reason and skipped.actor_label == "auto-approval"
    assert {c["refinement"] for c in skipped.details["candidates"]} == {r.pk for r in refs}
    assert not ActivityLog.objects.filter(agent=agent, event__in=["refinement_applied", "refinement_approved"]).exists()


def test_paper_trading_with_auto_apply_in_paper_may_change():
    agent = auto_agent(LOOSE)
    TradingAgent.objects.filter(pk=agent.pk).update(status=AgentStatus.PAPER_TRADING, auto_apply_in_paper=True)
    agent.refresh_from_db()
    run(agent)
    agent.refresh_from_db()
    assert agent.current_version.number == 2
    assert len(readings(agent, ExamPurpose.APPROVAL)) == 1


def test_disabled_auto_approval_judges_but_decides_nothing():
    agent = make_agent()
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    iteration = run(agent)
    refs = refinements(iteration)
    assert all(r.status == RefinementStatus.PENDING and not r.decision_reason for r in refs)
    # The selection rules' rows are kept for a person to read; the exam was not read for anyone.
    assert all([c["criterion"] for c in r.criteria_results] == SELECTION_ROWS for r in refs)
    assert readings(agent, ExamPurpose.APPROVAL) == [] and len(readings(agent, ExamPurpose.REPORT)) == 1
    assert not ActivityLog.objects.filter(agent=agent, actor_label="auto-approval").exists()
    assert approval.iteration_auto_approve(iteration) == approval._summary(enabled=False)


def test_candidates_never_examined_are_not_applied_later():
    """Switching auto-approval on after an iteration cannot apply its candidates: none was examined."""
    agent = make_agent()
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    iteration = run(agent)
    approval.auto_approve_enable(agent, actor=agent.owner)
    summary = approval.iteration_auto_approve(iteration)
    assert summary["approved"] is None and summary["rejected"] == len(refinements(iteration))
    assert all("not examined on the sealed window" in r.decision_reason for r in refinements(iteration))
    assert StrategyVersion.objects.filter(agent=agent).count() == 1


def test_a_persons_approval_waiting_to_be_applied_is_not_swept_up():
    agent = make_agent()
    first = run(agent)
    waiting = refinements(first)[0]
    decisions.refinement_approve(waiting, actor=agent.owner, reason="I like it")
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)

    second = run(agent)

    assert Refinement.objects.get(pk=waiting.pk).status == RefinementStatus.APPROVED
    assert {r.status for r in refinements(second)} == {RefinementStatus.PENDING}
    skipped = ActivityLog.objects.get(agent=agent, event="auto_approval_skipped")
    assert f"refinement(s) {waiting.pk} approved by a person" in skipped.message


def test_an_old_iteration_is_not_applied_over_a_newer_version():
    agent = make_agent()
    old = run(agent)
    decisions.refinement_approve(refinements(old)[0], actor=agent.owner)
    decisions.refinements_apply(agent, actor=agent.owner)
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)

    summary = approval.iteration_auto_approve(old)

    assert "current version changed" in summary["skipped"]
    assert StrategyVersion.objects.filter(agent=agent).count() == 2


def test_an_error_inside_approval_does_not_fail_the_iteration(monkeypatch):
    agent = auto_agent(LOOSE)

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(decisions, "refinements_apply", explode)
    iteration = run(agent)

    # The approval's own writes were rolled back; the candidates wait for a person.
    assert {r.status for r in refinements(iteration)} == {RefinementStatus.PENDING}
    assert not ActivityLog.objects.filter(agent=agent, event="refinement_approved").exists()
    failed = ActivityLog.objects.get(agent=agent, event="auto_approval_failed")
    assert "disk on fire" in failed.message
    assert StrategyVersion.objects.filter(agent=agent).count() == 1


def test_bad_stored_thresholds_do_not_break_the_iteration():
    agent = make_agent()
    TradingAgent.objects.filter(pk=agent.pk).update(
        auto_approve_enabled=True,
        approval_thresholds={**LOOSE, "min_sharpe_ratio": "nan", "min_signals": 10**6, "min_dsr": -1},
    )
    agent.refresh_from_db()
    iteration = run(agent)
    refs = refinements(iteration)
    assert all(criteria(r)["min_sharpe_ratio"]["required"] == 0.5 for r in refs)  # the default
    assert all(criteria(r)["min_dsr"]["required"] == 0.95 for r in refs)
    assert all(criteria(r)["min_signals"]["required"] == 10**6 for r in refs)
    assert {r.status for r in refs} == {RefinementStatus.REJECTED}


# --- a person's approval: the exam is read and what fails is said ---------------------------------
def test_a_person_may_approve_what_the_gate_refuses_and_is_told_why():
    agent = make_agent()  # default thresholds: a random walk's candidate fails the evidence rules
    iteration = run(agent)
    candidate = max(refinements(iteration), key=lambda r: r.score)
    stored = [c["criterion"] for c in candidate.criteria_results]

    approved = manual_approval.refinement_approve_with_evidence(candidate, actor=agent.owner, reason="a hunch")

    assert approved.status == RefinementStatus.APPROVED and approved.decided_by == agent.owner
    rows = criteria(approved)
    assert list(rows) == [*stored, "max_test_shortfall"]
    expected = sealed_score(agent, candidate.proposed_params)
    assert approved.test_score == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert approved.validation_metrics["sharpe"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    sealed = rows["max_test_shortfall"]
    assert sealed["current_test_score"] == pytest.approx(iteration.score)
    assert sealed["actual"] == pytest.approx(iteration.score - expected)
    assert sealed["passed"] is (iteration.score - expected <= 0.25)
    failed = [name for name, row in rows.items() if not row["passed"]]
    assert failed, "a random walk's candidate should fail the default gate"
    assert approved.decision_reason.startswith("a hunch (approved by a person; it fails ")
    assert all(name in approved.decision_reason for name in failed)
    (reading,) = readings(agent, ExamPurpose.MANUAL_APPROVAL)
    assert reading.refinement_id == candidate.pk and reading.score == pytest.approx(expected)
    with pytest.raises(Conflict):
        manual_approval.refinement_approve_with_evidence(approved, actor=agent.owner)


def test_a_persons_approval_that_passes_every_rule_says_so():
    agent = make_agent()
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    iteration = run(agent)
    approved = manual_approval.refinement_approve_with_evidence(refinements(iteration)[0], actor=agent.owner)
    assert approved.decision_reason == "approved by a person; it passes every rule of the gate"
    assert all(c["passed"] for c in approved.criteria_results)
    assert approved.criteria_results[-1]["criterion"] == "max_test_shortfall"


# --- API --------------------------------------------------------------------------------------
@pytest.fixture
def agent(user):
    return make_agent(owner=user, instrument=random_walk_bars(InstrumentFactory(symbol="SYNA")))


def url(agent, path):
    return f"/api/learning-agents/{agent.pk}/{path}"


def test_api_get_shows_thresholds_in_force_and_defaults(api, agent):
    resp = api.get(url(agent, "approval-thresholds"))
    assert resp.status_code == 200
    assert resp.data == {
        "auto_approve_enabled": False,
        "thresholds": approval.DEFAULT_THRESHOLDS,
        "defaults": approval.DEFAULT_THRESHOLDS,
        "applies_automatically": False,
        "note": "",
    }


def test_api_enable_and_disable(api, agent, user):
    for suffix in ("", "/"):
        resp = api.post(url(agent, "auto-approve/enable") + suffix)
        assert resp.status_code == 200
        assert resp.data["auto_approve_enabled"] is True and resp.data["applies_automatically"] is True
    assert TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    assert api.get(f"/api/learning-agents/{agent.pk}").data["auto_approve_enabled"] is True
    resp = api.post(url(agent, "auto-approve/disable/"))
    assert resp.status_code == 200 and resp.data["auto_approve_enabled"] is False
    assert not TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    assert ActivityLog.objects.filter(agent=agent, event="auto_approve_enabled", actor=user).count() == 1


def test_api_live_agent_says_why_nothing_applies(api, agent):
    TradingAgent.objects.filter(pk=agent.pk).update(status=AgentStatus.LIVE_TRADING)
    resp = api.post(url(agent, "auto-approve/enable"))
    assert resp.status_code == 200
    assert resp.data["auto_approve_enabled"] is True and resp.data["applies_automatically"] is False
    assert resp.data["note"] == approval.LIVE_SKIP_REASON


def test_api_put_replaces_the_thresholds(api, agent):
    body = {**LOOSE, "min_signals": 3, "max_drawdown": 0.25}
    resp = api.put(url(agent, "approval-thresholds"), body, format="json")
    assert resp.status_code == 200, resp.data
    assert resp.data["thresholds"] == body
    assert resp.data["defaults"] == approval.DEFAULT_THRESHOLDS
    agent.refresh_from_db()
    assert agent.approval_thresholds == body
    # A full replace: what is not sent (max_drawdown) goes back to its default.
    resp = api.put(url(agent, "approval-thresholds/"), LOOSE, format="json")
    assert resp.status_code == 200 and resp.data["thresholds"]["max_drawdown"] is None


def test_api_patch_changes_only_what_is_sent(api, agent):
    resp = api.patch(url(agent, "approval-thresholds"), {"min_win_rate": 0.55}, format="json")
    assert resp.status_code == 200
    assert resp.data["thresholds"] == {**approval.DEFAULT_THRESHOLDS, "min_win_rate": 0.55}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**LOOSE, "min_win_rate": 1.5}, {"min_win_rate"}),
        ({**LOOSE, "min_signals": 2.5}, {"min_signals"}),
        ({**LOOSE, "require_improvement": "true"}, {"require_improvement"}),
        ({**LOOSE, "min_sharpe_ratio": True}, {"min_sharpe_ratio"}),
        ({**LOOSE, "max_drawdown": 0}, {"max_drawdown"}),
        ({**LOOSE, "colour": "blue"}, {"colour"}),
        ({**LOOSE, "min_win_rate": -1, "min_total_return": -3, "x": 1}, {"min_win_rate", "min_total_return", "x"}),
    ],
)
def test_api_put_bad_thresholds_is_a_400_naming_each_field(api, agent, body, fields):
    resp = api.put(url(agent, "approval-thresholds"), body, format="json")
    assert resp.status_code == 400
    assert set(resp.data) == fields
    assert all(isinstance(resp.data[f], list) and resp.data[f][0] for f in fields)
    agent.refresh_from_db()
    assert agent.approval_thresholds == {}


def test_api_put_a_list_is_a_400(api, agent):
    resp = api.put(url(agent, "approval-thresholds"), [1, 2], format="json")
    assert resp.status_code == 400 and "thresholds" in resp.data


def test_api_thresholds_take_json_only(api, agent):
    # A form cannot tell a boolean or a number from a string: refused rather than guessed.
    resp = api.put(url(agent, "approval-thresholds"), "min_win_rate=0.5",
                      content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415
    agent.refresh_from_db()
    assert agent.approval_thresholds == {}


def test_api_another_owners_agent_is_a_404(api):
    theirs = make_agent(owner=UserFactory(username="bob"))
    assert api.get(url(theirs, "approval-thresholds")).status_code == 404
    assert api.put(url(theirs, "approval-thresholds"), LOOSE, format="json").status_code == 404
    assert api.patch(url(theirs, "approval-thresholds"), {"min_win_rate": 0.1}, format="json").status_code == 404
    assert api.post(url(theirs, "auto-approve/enable")).status_code == 404
    assert api.post(url(theirs, "auto-approve/disable")).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.auto_approve_enabled and theirs.approval_thresholds == {}


def test_api_end_to_end_an_iteration_applies_by_itself(api, agent):
    api.put(url(agent, "approval-thresholds"), LOOSE, format="json")
    api.post(url(agent, "auto-approve/enable"))
    resp = api.post(url(agent, "iterations?wait=true"))
    assert resp.status_code == 200 and resp.data["status"] == "succeeded"
    versions = api.get(url(agent, "versions")).data["results"]
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["origin"] == "refinement"
    applied = api.get(url(agent, "refinements?status=applied")).data["results"]
    assert len(applied) == 1 and applied[0]["decided_automatically"] and applied[0]["criteria_results"]
    labels = {a["actor_label"] for a in api.get(url(agent, "activity")).data["results"]}
    assert "auto-approval" in labels


def test_api_schema_documents_the_endpoints(api):
    resp = api.get("/api/schema/")
    assert resp.status_code == 200
    for path in (b"/api/learning-agents/{id}/auto-approve/enable", b"/api/learning-agents/{id}/auto-approve/disable",
                 b"/api/learning-agents/{id}/approval-thresholds"):
        assert path in resp.content
    assert b"min_sharpe_ratio" in resp.content


def test_api_approving_by_hand_shows_the_evidence_and_what_fails(api, agent):
    iteration, _ = learning.iteration_run_now(agent, trigger="api")
    candidate = refinements(iteration)[0]
    resp = api.post(url(agent, f"refinements/{candidate.pk}/approve"), {"reason": "trust me"}, format="json")
    assert resp.status_code == 200, resp.data
    assert resp.data["status"] == "approved"
    rows = {r["criterion"]: r for r in resp.data["criteria_results"]}
    assert "max_test_shortfall" in rows and "min_dsr" in rows
    failed = [name for name, r in rows.items() if not r["passed"]]
    assert failed and resp.data["decision_reason"].startswith("trust me (approved by a person; it fails ")
    assert all(name in resp.data["decision_reason"] for name in failed)
    assert ExamReading.objects.filter(agent=agent, purpose=ExamPurpose.MANUAL_APPROVAL,
                                      refinement_id=candidate.pk).count() == 1
