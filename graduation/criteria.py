"""Graduation criteria: the rules of the learning -> paper and paper -> live gates.

Declared once (:data:`GRADUATION_RULES`); lab-wide overrides come from ``LAB_GRAD_<NAME>``,
per-agent ones from ``graduation_criteria`` (README "Graduation, paper and live trading").

Learning -> paper trading (evidence: the latest succeeded iteration that evaluated the current
version, after the last demotion):

==============================  =======  ==================================================================
criterion                       default  evidence and rule
==============================  =======  ==================================================================
``min_iterations``              10       succeeded iterations in the agent's lifetime: learning effort,
                                         not evidence of skill; an integer in [1, 100000]
``min_fold_pass``               3        folds (of K, capped at K) in which each fold rule must pass
``min_win_rate``                0.4      per fold and on the sealed test window: ``win_rate >=``
``min_sharpe_ratio``            0.5      per fold and on the sealed test window: ``sharpe >=``
``min_total_return``            0.0      per fold and on the sealed test window: ``total_return >=``
``min_signals``                 5        selection data as a whole and the sealed test window: ``num_trades >=``
``max_drawdown``                0.25     per fold and on the sealed test window: ``max_drawdown <=``;
                                         also the automatic demotion line of a trading agent
``min_probabilistic_sharpe``    null     sealed test window: ``psr >=`` it; null (off) or in [0, 1]
``min_dsr``                     0.95     deflated Sharpe ratio of the version over all the agent's trials
``max_pbo``                     0.5      probability of backtest overfitting of the agent's search
``track_record_confidence``     0.8      the sealed test window must be at least as long as the minimum
                                         track record length of its Sharpe ratio at this confidence
                                         (Bailey & López de Prado 2012); null (off) or in [0.5, 0.999]
==============================  =======  ==================================================================

Paper trading -> live trading (evidence: the open paper account): ``paper_bars`` >=
LAB_PAPER_MIN_BARS, ``paper_trades`` >= LAB_PAPER_MIN_TRADES, ``max_drawdown`` and
``min_total_return`` on the paper record, ``min_paper_psr`` (default 0.95: the probabilistic
Sharpe ratio of the paper returns against 0), and the paper record at least as long as its
minimum track record length at ``paper_track_record_confidence`` (default 0.95).

Validation is the rules engine's (agents.evaluation.rules); bad lab defaults stop the start-up
(:func:`check_defaults`).
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from agents.evaluation import rules as R
from agents.models import TradingAgent
from agents.services.activity import activity_log

MIN_ITERATIONS = R.Rule("min_iterations", "iterations", ">=", "int", 1, 100_000, default=10,
                        words="an integer between 1 and 100000",
                        meaning="succeeded iterations (learning effort, not evidence of skill)")
MIN_PSR = R.Rule("min_probabilistic_sharpe", "psr", ">=", "float", 0.0, 1.0, nullable=True, evidence="test",
                 words="a number between 0 and 1, or null (off)",
                 meaning="probabilistic Sharpe ratio on the sealed test window")
MAX_PBO = R.Rule("max_pbo", "pbo", "<=", "float", 0.0, 1.0, default=0.5, words="a number between 0 and 1",
                 meaning="probability of backtest overfitting of the agent's search (CSCV)")
# The exam is a fifth of the bars: at 95% its minimum track record would ask a daily Sharpe near
# 1.3 of a 400-bar window, a replication standard. The 95% claim is the deflated Sharpe's, on the
# selection data; the exam must confirm it at 80%, and the paper record must reach 95% before live.
TRACK_RECORD = R.Rule("track_record_confidence", None, "flag", "float", 0.5, 0.999, nullable=True, default=0.8,
                      words="a number between 0.5 and 0.999, or null (off)",
                      meaning="confidence of the minimum track record length the sealed test window must reach")
PAPER_TRACK_RECORD = R.specialise(
    TRACK_RECORD, name="paper_track_record_confidence", default=0.95,
    meaning="confidence of the minimum track record length the paper record must reach",
)
MIN_PAPER_PSR = R.Rule("min_paper_psr", "psr", ">=", "float", 0.0, 1.0, default=0.95, evidence="paper",
                       words="a number between 0 and 1", meaning="probabilistic Sharpe ratio of the paper record")
FOLD_RULES = (
    *(R.specialise(rule, evidence="folds+test") for rule in (R.MIN_WIN_RATE, R.MIN_SHARPE, R.MIN_TOTAL_RETURN)),
    R.specialise(R.MIN_SIGNALS, evidence="selection+test"),
    R.specialise(R.MAX_DRAWDOWN, evidence="folds+test", default=0.25),
)
GRADUATION_RULES = (
    MIN_ITERATIONS, R.specialise(R.MIN_FOLD_PASS, default=3), *FOLD_RULES, MIN_PSR,
    R.specialise(R.MIN_DSR, default=0.95), MAX_PBO, TRACK_RECORD, MIN_PAPER_PSR, PAPER_TRACK_RECORD,
)
LEARNING_RULES = tuple(r for r in GRADUATION_RULES if r not in (MIN_PAPER_PSR, PAPER_TRACK_RECORD))
CRITERIA = tuple(r.name for r in GRADUATION_RULES)
RULES = R.rules_by_name(GRADUATION_RULES)


def check(name, value):
    """(clean value, None) or (None, the rule broken)."""
    return RULES[name].check(value)


def defaults():
    """The rules' declared defaults overlaid with the lab-wide LAB_GRAD_* overrides."""
    return R.in_force(GRADUATION_RULES, settings.LAB_GRADUATION_CRITERIA, owner="LAB_GRADUATION_CRITERIA")


def check_defaults():
    """Raise ImproperlyConfigured naming every bad lab-wide override (called at start-up)."""
    configured = settings.LAB_GRADUATION_CRITERIA
    problems = []
    for name, value in configured.items():
        if name not in RULES:
            problems.append(f"{name}: unknown criterion (known: {', '.join(CRITERIA)})")
            continue
        _clean, problem = check(name, value)
        if problem:
            problems.append(f"{name}={value!r}: {problem}")
    if problems:
        raise ImproperlyConfigured("LAB_GRADUATION_CRITERIA (LAB_GRAD_* variables): " + "; ".join(problems))


def validate_overrides(data):
    """The cleaned overrides object, or ValidationFailed naming every bad key."""
    return R.validate(GRADUATION_RULES, data, defaults={}, label="criteria")


def effective_criteria(agent):
    """Defaults overlaid with the agent's overrides. Never raises: a stored value that breaks a rule
    (edited by hand) is ignored in favour of the default."""
    return R.in_force(GRADUATION_RULES, agent.graduation_criteria, defaults=defaults(),
                      owner=f"agent {agent.pk} graduation")


def criteria_settings(agent):
    stored = agent.graduation_criteria if isinstance(agent.graduation_criteria, dict) else {}
    return {"criteria": effective_criteria(agent), "overrides": dict(stored), "defaults": defaults()}


def criteria_set(agent, data, *, actor, partial=False):
    """Replace the agent's overrides (an empty object returns it to the lab defaults), or with
    ``partial`` change only the criteria sent and keep the other overrides. The same rule as the
    approval thresholds': what a replace does not send is back to its default."""
    clean = validate_overrides(data)
    with transaction.atomic():
        agent = TradingAgent.objects.select_for_update().get(pk=agent.pk)
        before = agent.graduation_criteria
        if partial:
            kept = before if isinstance(before, dict) else {}
            clean = {**{k: v for k, v in kept.items() if k in RULES}, **clean}
        agent.graduation_criteria = clean
        agent.save(update_fields=["graduation_criteria", "updated_at"])
        activity_log(
            agent, event="graduation_criteria_set",
            message="Graduation criteria overrides set" + (f": {clean}" if clean else " (lab defaults)") + ".",
            actor=actor, details={"before": before, "after": clean},
        )
    return agent
