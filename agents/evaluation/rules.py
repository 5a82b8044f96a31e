"""One rules engine for every gate: auto-approval, graduation, and what a person is shown.

A :class:`Rule` is declared once (name, metric, comparison, type and bounds of its value,
default, evidence) and a gate is a tuple of rules (``APPROVAL_RULES``, ``GRADUATION_RULES``); the
validation of what an owner sends, the values in force, the API's bounds and the judgement all
derive from it. Evidence a rule reads (``Rule.evidence``):

- ``folds``: passes when at least ``min_fold_pass`` (capped at K) of the K selection folds pass;
  ``actual`` is the value of the ``min_fold_pass``-th best fold, so the rule passes exactly when
  that value passes. ``folds+test``: and the sealed test window passes too.
- ``selection``: the selection data as a whole (folds end to end), for rules about the amount of
  evidence such as trades: split over K folds such a rule would be K times stricter than its
  words. ``selection+test``: and the sealed test window passes too.
- ``test``: the sealed test window only; ``value``: a scalar the gate computed (DSR, a p-value).

A missing or non-finite metric fails its rule (``actual: None``); a nullable rule set to null is
off and yields no row. A row: ``{"criterion", "required", "actual", "passed", "evidence", ...}``
plus, for fold evidence, ``folds_passed``, ``folds`` (K), ``fold_values`` and ``test_value``.
"""

import dataclasses
import logging
import math
from dataclasses import dataclass, field

from agents.evaluation.numbers import bounded_number, finite_or_none
from core.errors import ValidationFailed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str | None  # the key it reads in the evidence (metrics dict or scalar values)
    op: str  # ">=" or "<=" (actual op required) or "flag" (a boolean switch, judged by the gate)
    kind: str  # "float" | "int" | "bool"
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # low excluded
    words: str = ""  # the bounds, as said in an error
    default: object = None
    evidence: str = "value"  # folds | folds+test | selection | selection+test | test | value | paper
    nullable: bool = False  # null turns the rule off
    meaning: str = ""

    def bounds(self):
        """JSON-ready bounds for the API and the console."""
        return {
            "type": self.kind, "min": None if math.isinf(self.low) else self.low,
            "max": None if math.isinf(self.high) else self.high, "min_exclusive": self.low_open,
            "nullable": self.nullable, "default": self.default, "evidence": self.evidence,
            "metric": self.metric, "comparison": self.op, "meaning": self.meaning,
        }

    def check(self, value):
        """(clean value, None) or (None, the rule broken)."""
        if self.kind == "bool":
            return (value, None) if isinstance(value, bool) else (None, "must be true or false")
        if value is None:
            return (None, None) if self.nullable else (None, f"must be {self.words}")
        number = bounded_number(value, self.kind, self.low, self.high, low_open=self.low_open)
        return (number, None) if number is not None else (None, f"must be {self.words}")


# --- the metric rules the gates share (declared once) -----------------------------------------
# Their defaults are shared too, so that approval never applies a version that graduation would
# refuse on the same rule (the gates differ in the evidence each reads, not in the bar).
MIN_WIN_RATE = Rule("min_win_rate", "win_rate", ">=", "float", 0.0, 1.0, words="a number between 0 and 1",
                    meaning="share of winning trades", default=0.4)
MIN_SHARPE = Rule("min_sharpe_ratio", "sharpe", ">=", "float", -10.0, 10.0,
                  words="a number between -10 and 10", meaning="annualised Sharpe ratio", default=0.5)
MIN_SIGNALS = Rule("min_signals", "num_trades", ">=", "int", 0, 1_000_000,
                   words="an integer between 0 and 1000000", meaning="number of trades", default=5)
MIN_TOTAL_RETURN = Rule("min_total_return", "total_return", ">=", "float", -1.0, math.inf,
                        words="a number >= -1 (a fraction: -0.1 = -10%)", meaning="total return", default=0.0)
MAX_DRAWDOWN = Rule("max_drawdown", "max_drawdown", "<=", "float", 0.0, 1.0, low_open=True,
                    words="a number greater than 0 and at most 1 (0.25 = 25%)", meaning="maximum drawdown")
MIN_DSR = Rule("min_dsr", "dsr", ">=", "float", 0.0, 1.0, words="a number between 0 and 1",
               meaning="deflated Sharpe ratio over every parameter set the agent tried")
MIN_FOLD_PASS = Rule("min_fold_pass", None, "flag", "int", 1, 20, words="an integer between 1 and 20",
                     meaning="folds (of K) in which each fold rule must pass")


# --- an owner's values ------------------------------------------------------------------------
def rules_by_name(rules):
    return {r.name: r for r in rules}


def defaults_of(rules):
    return {r.name: r.default for r in rules}


def validate(rules, data, *, defaults=None, required=(), label="thresholds"):
    """``defaults`` overlaid with the cleaned ``data``; ValidationFailed naming every bad key."""
    if not isinstance(data, dict):
        raise ValidationFailed({label: "must be an object mapping names to values"})
    known = rules_by_name(rules)
    errors, clean = {}, {}
    for name, value in data.items():
        rule = known.get(name)
        if rule is None:
            errors[str(name)] = f"unknown name (known: {', '.join(known)})"
            continue
        checked, problem = rule.check(value)
        if problem:
            errors[name] = problem
        else:
            clean[name] = checked
    for name in required:
        if name not in data:
            errors[name] = "required: a full replace sends every one of " + ", ".join(required)
    if errors:
        raise ValidationFailed(errors)
    return {**(defaults_of(rules) if defaults is None else defaults), **clean}


def in_force(rules, stored, *, defaults=None, owner=""):
    """Defaults overlaid with the stored values. Never raises: a stored value that breaks its
    rule (edited by hand) is ignored in favour of the default, with a warning."""
    result = dict(defaults_of(rules) if defaults is None else defaults)
    known = rules_by_name(rules)
    for name, value in (stored if isinstance(stored, dict) else {}).items():
        rule = known.get(name)
        if rule is None:
            continue
        checked, problem = rule.check(value)
        if problem:
            logger.warning("%s: ignoring stored %s=%r (%s)", owner, name, value, problem)
        else:
            result[name] = checked
    return result


# --- judging ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    folds: list = field(default_factory=list)  # per-fold metrics dicts, oldest first
    test: dict | None = None  # the sealed window's metrics, None when not read
    selection: dict | None = None  # the selection data's metrics (folds end to end)
    values: dict = field(default_factory=dict)  # scalars: dsr, p-values, counts...
    min_fold_pass: int = 1


def compares(actual, op, required):
    return actual is not None and (actual >= required if op == ">=" else actual <= required)


def _metric(metrics, rule):
    value = finite_or_none((metrics or {}).get(rule.metric))
    if value is not None and rule.kind == "int":
        value = int(value)
    return value


def judge_rule(rule, required, evidence):
    """The result row of one rule, or None when the rule is off (null) or a flag."""
    if required is None or rule.op == "flag":
        return None
    row = {"criterion": rule.name, "required": required, "evidence": rule.evidence, "comparison": rule.op}
    kind, _plus, also_test = rule.evidence.partition("+")
    if kind == "folds":
        values = [_metric(m, rule) for m in evidence.folds]
        need = min(evidence.min_fold_pass, len(values)) if values else 1
        passing = sum(compares(v, rule.op, required) for v in values)
        known = sorted((v for v in values if v is not None), reverse=rule.op == ">=")
        actual = known[need - 1] if len(known) >= need else None
        passed = bool(values) and passing >= need
        row.update(folds_passed=passing, folds=len(values), folds_needed=need, fold_values=values)
    else:
        source = {"selection": evidence.selection, "test": evidence.test}.get(kind, evidence.values)
        actual = _metric(source, rule) if source is not None else None
        passed = compares(actual, rule.op, required)
    if also_test:  # "folds+test", "selection+test": the sealed window must pass as well
        test_value = _metric(evidence.test, rule) if evidence.test is not None else None
        row["test_value"] = test_value
        passed = passed and compares(test_value, rule.op, required)
    row.update(actual=actual, passed=passed)
    return row


def judge(rules, values, evidence):
    """One row per rule in force, in declaration order (see the module docstring)."""
    rows = []
    for rule in rules:
        row = judge_rule(rule, values.get(rule.name), evidence)
        if row is not None:
            rows.append(row)
    return rows


def failed(rows):
    return [r for r in rows if not r["passed"]]


def fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.4g}"


def describe(row):
    """One line a person reads: 'min_dsr 0.41 < 0.95', with the fold count where it matters."""
    if "text" in row:
        return row["text"]
    op = row.get("comparison", ">=")
    actual, required = row["actual"], row["required"]
    if row.get("folds") is not None:
        where = f" in {row['folds_passed']} of {row['folds']} folds (needs {row['folds_needed']})"
        if "test_value" in row:
            where += f", sealed test {fmt(row['test_value'])}"
        return f"{row['criterion']}{where}; required {fmt(required)}"
    if row.get("evidence") in ("selection", "selection+test"):
        where = f"{row['criterion']} {fmt(actual)} on the selection data"
        if "test_value" in row:
            where += f", {fmt(row['test_value'])} on the sealed test"
        return f"{where}; required {op} {fmt(required)}"
    if actual is None:
        return f"{row['criterion']}: no evidence (needs {fmt(required)})"
    verdict = "" if row["passed"] else "fails "
    return f"{row['criterion']} {fmt(actual)} {verdict}{op} {fmt(required)}"


def specialise(rule, **changes):
    return dataclasses.replace(rule, **changes)
