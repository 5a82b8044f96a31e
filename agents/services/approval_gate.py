"""The approval gate: the rules a candidate must pass to replace the current version, and its evidence.

=========================  ========  ======================================================================
rule                       default   evidence and rule
=========================  ========  ======================================================================
``min_dsr``                0.95      deflated Sharpe ratio of the candidate's selection returns over all
                                     the agent's distinct trials: ``dsr >= min_dsr``; in [0, 1]
``max_improvement_p``      0.05      paired test (Jobson-Korkie with Memmel's correction) that the
                                     candidate's selection Sharpe beats the current version's on the same
                                     bars: ``p <= max_improvement_p``; in (0, 1]
``max_test_shortfall``     0.25      sealed test window: current objective - candidate objective
                                     ``<= max_test_shortfall`` (objective units); in [0, 100]. Read only for
                                     the best candidate that passes every other rule.
``min_fold_pass``          3         folds (of the agent's K, capped at K) in which each fold rule below must
                                     pass; an integer in [1, 20]
``min_win_rate``           0.4       per fold: ``win_rate >= min_win_rate``; in [0, 1]
``min_sharpe_ratio``       0.5       per fold: ``sharpe >= min_sharpe_ratio``; in [-10, 10]
``min_signals``            5         selection data as a whole: ``num_trades >= min_signals``; an integer
                                     in [0, 1000000]
``min_total_return``       0.0       per fold: ``total_return >= min_total_return``; a number >= -1
``max_drawdown``           null      per fold: ``max_drawdown <= max_drawdown``; in (0, 1], or null (off)
``require_improvement``    true      the candidate's selection score must be strictly greater than the
                                     current version's; a boolean
=========================  ========  ======================================================================

Declared once (:data:`APPROVAL_RULES`, on :mod:`agents.evaluation.rules`); this module computes
the evidence they read.
"""

from agents.evaluation import rules as R
from agents.evaluation.statistics import sharpe_difference_test
from agents.evaluation.trials import dsr_of

MIN_DSR = R.specialise(R.MIN_DSR, default=0.95)
MAX_IMPROVEMENT_P = R.Rule(
    "max_improvement_p", "improvement_p", "<=", "float", 0.0, 1.0, low_open=True,
    words="a number greater than 0 and at most 1", default=0.05,
    meaning="p-value of the paired test that the candidate beats the current version",
)
MAX_TEST_SHORTFALL = R.Rule(
    "max_test_shortfall", "test_shortfall", "<=", "float", 0.0, 100.0,
    words="a number between 0 and 100 (objective units)", default=0.25, evidence="test",
    meaning="how much worse than the current version the candidate may be on the sealed test window",
)
MIN_FOLD_PASS = R.specialise(R.MIN_FOLD_PASS, default=3)
REQUIRE_IMPROVEMENT = R.Rule("require_improvement", None, "flag", "bool", default=True,
                             meaning="selection score strictly above the current version's")
FOLD_RULES = (
    *(R.specialise(rule, evidence="folds") for rule in (R.MIN_WIN_RATE, R.MIN_SHARPE)),
    R.specialise(R.MIN_SIGNALS, evidence="selection"),
    R.specialise(R.MIN_TOTAL_RETURN, evidence="folds"),
    R.specialise(R.MAX_DRAWDOWN, evidence="folds", nullable=True, default=None),
)
APPROVAL_RULES = (MIN_DSR, MAX_IMPROVEMENT_P, MAX_TEST_SHORTFALL, MIN_FOLD_PASS, *FOLD_RULES, REQUIRE_IMPROVEMENT)
SELECTION_RULES = tuple(r for r in APPROVAL_RULES if r is not MAX_TEST_SHORTFALL)
DEFAULT_THRESHOLDS = R.defaults_of(APPROVAL_RULES)
# The five core ApprovalThresholds: a complete thresholds object (validate_thresholds without
# ``partial``, the console form) holds each of these; a PUT may omit them (back to the default).
REQUIRED_KEYS = ("min_win_rate", "min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement")
SEALED_CRITERION = MAX_TEST_SHORTFALL.name


def selection_evidence(candidate, current, pop):
    """Scalars the selection rules read, for ``candidate`` against ``current`` (SelectionEvaluations)."""
    test = sharpe_difference_test(candidate.returns, current.returns)
    return {
        "dsr": dsr_of(candidate.stats, pop),
        "improvement_p": test.p_value,
        "improvement_z": test.z,
        "selection_sharpe": candidate.stats.sr,
        "current_selection_sharpe": current.stats.sr,
        "returns_correlation": test.rho,
        "selection_score": candidate.score,
        "current_selection_score": current.score,
        "n_trials": pop.n_trials,
        "trials_sharpe_variance": pop.cross_variance,
        "dsr_variance": pop.variance,
        "selection_bars": candidate.stats.t,
    }


def judge_selection(values, candidate, evidence, n_folds):
    """Rows of every rule but the sealed one, on the candidate's folds and selection evidence."""
    need = min(values["min_fold_pass"], n_folds)
    rows = R.judge(SELECTION_RULES, values, R.Evidence(folds=candidate.fold_metrics, selection=candidate.metrics,
                                                      values=evidence, min_fold_pass=need))
    if values.get("require_improvement"):
        score, current = evidence["selection_score"], evidence["current_selection_score"]
        rows.append({
            "criterion": "require_improvement", "evidence": "value", "comparison": ">",
            "required": f"> current selection score {R.fmt(current)}", "actual": score,
            "passed": score is not None and current is not None and score > current,
            "text": f"require_improvement: selection score {R.fmt(score)} "
                    f"{'>' if score > current else 'not >'} current {R.fmt(current)}",
        })
    return rows


def judge_sealed(values, candidate_test_score, current_test_score, usage):
    """The sealed-window row: how far the candidate falls short of the current version there."""
    shortfall = current_test_score - candidate_test_score
    row = R.judge_rule(MAX_TEST_SHORTFALL, values["max_test_shortfall"],
                       R.Evidence(test={"test_shortfall": shortfall}))
    row.update(candidate_test_score=candidate_test_score, current_test_score=current_test_score,
               exam_readings=usage["readings"], exam_distinct_params=usage["distinct_params"])
    return row


def has_sealed(rows):
    return any(r["criterion"] == SEALED_CRITERION for r in rows)


def describe_rows(rows):
    return "; ".join(R.describe(r) for r in rows)
