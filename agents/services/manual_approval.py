"""A person approves a candidate: the sealed window is read for it, and the evidence is shown.

A person may approve a candidate the gate would refuse; the lab does not stop them, but it says
plainly which rules the candidate fails. Approving reads the sealed test window for the candidate
and the current version (recorded as a ``manual_approval`` reading), adds the sealed row to the
candidate's stored gate rows, and puts every failed rule in the decision's reason.
"""

from django.db import transaction

from agents.evaluation import rules as R
from agents.evaluation.exam import exam_record, exam_usage
from agents.evaluation.protocol import EvaluationError
from agents.models import ExamPurpose, Refinement, RefinementStatus
from agents.services import approval, approval_gate, decisions
from agents.services.iteration_evaluation import setting_for
from agents.strategies.base import ParamValidationError
from core.errors import Conflict


def _sealed_row(refinement):
    """(row, reading kwargs) or (row saying why the window could not be read, None)."""
    agent = refinement.agent
    try:
        setting = setting_for(agent)
        params = setting.template.validate(refinement.proposed_params)
        current_params = setting.template.validate(agent.current_version.params)
    except (EvaluationError, ParamValidationError, AttributeError) as exc:
        return {"criterion": approval_gate.SEALED_CRITERION, "required": "a readable sealed window",
                "actual": None, "passed": False, "evidence": "test",
                "text": f"{approval_gate.SEALED_CRITERION}: the sealed window could not be read ({exc})"}, None
    candidate, current = setting.sealed(params), setting.sealed(current_params)
    usage = exam_usage(agent.pk, setting.window[0])
    usage = {"readings": usage["readings"] + 1, "distinct_params": usage["distinct_params"] + 1}
    row = approval_gate.judge_sealed(approval.effective_thresholds(agent), candidate.score, current.score, usage)
    reading = {"params": params, "window": setting.window, "score": candidate.score, "metrics": candidate.metrics}
    return row, reading


def refinement_approve_with_evidence(refinement, *, actor, reason=""):
    """Approve ``refinement`` for a person, with the gate's evidence in its rows and reason."""
    if refinement.status != RefinementStatus.PENDING:
        raise Conflict({"status": f"only a pending refinement can be approved (this one is {refinement.status})"})
    row, reading = _sealed_row(refinement)  # a backtest: before the transaction
    rows = [r for r in (refinement.criteria_results or []) if r.get("criterion") != approval_gate.SEALED_CRITERION]
    rows.append(row)
    failed = R.failed(rows)
    verdict = ("it fails " + approval_gate.describe_rows(failed)) if failed else "it passes every rule of the gate"
    text = f"{reason.strip()} (approved by a person; {verdict})" if reason.strip() else (
        f"approved by a person; {verdict}")
    with transaction.atomic():
        if reading is not None:
            exam_record(agent_id=refinement.agent_id, purpose=ExamPurpose.MANUAL_APPROVAL, params=reading["params"],
                        window=reading["window"], score=reading["score"], refinement_id=refinement.pk)
            Refinement.objects.filter(pk=refinement.pk).update(
                test_score=reading["score"], validation_metrics=reading["metrics"])
        return decisions.refinement_approve(refinement, actor=actor, reason=text, criteria_results=rows)
