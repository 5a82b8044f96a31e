"""One learning iteration: the pipeline every entry point (task, API, admin, command) calls.

queue -> claim (both in agents.services.dispatch) -> evaluate (agents.services.iteration_evaluation:
folds, refiner, candidates, statistics, gate, sealed readings) -> finish in one short transaction
(rows, exam readings, auto-approval) -> announce after commit.

Score (the headline): the agent's objective on the sealed test window for the evaluated version,
which the search never saw. The selection score (in-sample for the search) is stored beside it.
Improvement: relative change of the score against the previous succeeded iteration,
    (score_t - score_{t-1}) / |score_{t-1}|, or the plain difference when |score_{t-1}| < 1e-3
    (a relative change against ~0 is meaningless).
"""

import datetime as dt
import logging
import time

import numpy as np
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from agents import observability
from agents.evaluation.exam import exam_record
from agents.models import (
    IterationStatus,
    LearningIteration,
    Refinement,
    Trade,
)
from agents.refiners.base import RefinerAuthError, RefinerError
from agents.refiners.factory import get_refiner
from agents.refiners.optuna_refiner import OptunaRefiner
from agents.services import approval, llm_budget
from agents.services.activity import activity_log
from agents.services.agent_lock import AgentGone, agent_locked
from agents.services.announce import announce_iteration_finished
from agents.services.dispatch import iteration_claim, iteration_queue
from agents.services.iteration_evaluation import iteration_evaluate
from config.observability import metrics
from config.observability.logging import bind_log_context, log_context

logger = logging.getLogger(__name__)

# Seconds before each new attempt to record an iteration's outcome while the database is
# unavailable (about 7.5 s in all, plus each attempt's own wait: SQLite's busy timeout).
DB_WRITE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
def improvement_between(score, previous):
    if score is None or previous is None:
        return None
    if abs(previous) < 1e-3:
        return score - previous
    return (score - previous) / abs(previous)


def iteration_run(iteration_id):
    """Run a queued iteration to its end. Idempotent: a finished or running one is left alone.

    Raises IterationDeferred when the lab-wide cap is reached (the caller retries later).
    Every record logged meanwhile carries iteration_id and agent_id (config.observability).
    """
    with log_context(iteration_id=iteration_id):
        return _run_claimed(iteration_id)


def _run_claimed(iteration_id):
    if not iteration_claim(iteration_id):
        return LearningIteration.objects.filter(pk=iteration_id).first()
    iteration = LearningIteration.objects.select_related(
        "agent__instrument", "agent__current_version", "agent__owner"
    ).filter(pk=iteration_id).first()
    if iteration is None:  # its agent was deleted just after the claim
        logger.info("iteration %s was deleted with its agent before it started; nothing to do", iteration_id)
        return None
    bind_log_context(agent_id=iteration.agent_id)
    started = time.monotonic()
    try:
        outcome = _execute(iteration)
        _record_outcome(_finish_success, iteration, outcome, started)
    except BaseException as exc:
        _record_outcome(_finish_failure, iteration, exc, started)
        if not isinstance(exc, Exception):
            raise
    return iteration


def _record_outcome(finish, iteration, *args):
    """Run `finish` (one transaction) until it commits, on a live connection each time.

    The work is done by now and may have taken minutes: a database blip (SQLite busy past its
    timeout, a PostgreSQL connection dropped or failed over during the slow part) must not
    throw it away. The write is retried after each of DB_WRITE_RETRY_DELAYS, on a replaced
    connection when the last one died. Inside an outer transaction (tests, scripts) nothing is retried.
    """
    for attempt, delay in enumerate((*DB_WRITE_RETRY_DELAYS, None)):
        try:
            # Only a retry replaces the connection. Closing it before every first attempt cost
            # ~10 ms an iteration on SQLite (CONN_MAX_AGE 0 made it always "obsolete"; closing
            # checkpoints the WAL); a connection that died meanwhile fails the first attempt,
            # which marks it unusable, and the retry below replaces it.
            if attempt and not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
                if not LearningIteration.objects.filter(pk=iteration.pk, status=IterationStatus.RUNNING).exists():
                    return None  # the last attempt did commit; only the answer to its COMMIT was lost
            with agent_locked(iteration.agent_id):  # agents.services.agent_lock: never race a delete
                return finish(iteration, *args)
        except AgentGone:
            logger.info("iteration %s: agent %s was deleted while the iteration ran; its outcome is dropped",
                        iteration.pk, iteration.agent_id)
            return None
        except (OperationalError, InterfaceError) as exc:
            if delay is None or connection.in_atomic_block:
                raise
            logger.warning(
                "iteration %s: database unavailable while recording its outcome (%s: %s); retrying in %.1f s",
                iteration.pk, type(exc).__name__, exc, delay,
            )
            time.sleep(delay)
    return None


def iteration_run_now(agent, *, trigger, requested_by=None):
    """Queue and run inline (scripts, commands, `?wait=true`)."""
    iteration, created = iteration_queue(agent, trigger=trigger, requested_by=requested_by)
    if iteration.status == IterationStatus.QUEUED:
        iteration_run(iteration.pk)
        iteration.refresh_from_db()
    return iteration, created


def _execute(iteration):
    """The slow part, outside any transaction: backtests and the refiner's network call."""
    return iteration_evaluate(iteration, _propose)


def _propose(agent, context):
    """Ask the agent's refiner; Claude falls back to Optuna when unavailable or over budget."""
    refiner = get_refiner(agent.refiner, template=context.template)
    if refiner.name == "claude":
        budget = llm_budget.budget_state()
        if budget.exhausted:
            observability.refiner_called(refiner.name, "skipped_budget")
            proposal = OptunaRefiner().propose(context)
            proposal.fallback_reason = f"{budget.describe()}; used Optuna instead"
            return proposal
    try:
        proposal = refiner.propose(context)
        observability.refiner_called(refiner.name, proposal)
        return proposal
    except RefinerAuthError as exc:
        observability.refiner_called(refiner.name, exc)
        raise
    except RefinerError as exc:
        observability.refiner_called(refiner.name, exc)
        if refiner.name != "claude":  # only an LLM's failure falls back to Optuna
            raise
        logger.warning("refiner %s failed for agent %s, falling back to Optuna: %s", refiner.name, agent.pk, exc)
        proposal = OptunaRefiner().propose(context)
        proposal.fallback_reason = f"{refiner.name} failed ({type(exc).__name__}: {exc}); used Optuna instead"
        # What the failed call cost and what it proposed stay on the record.
        proposal.model = exc.model
        proposal.input_tokens = exc.input_tokens
        proposal.output_tokens = exc.output_tokens
        proposal.rejected = list(exc.rejected) + list(proposal.rejected)
        return proposal


def _previous_score(iteration):
    return (
        LearningIteration.objects.filter(
            agent_id=iteration.agent_id, status=IterationStatus.SUCCEEDED, number__lt=iteration.number
        )
        .order_by("-number")
        .values_list("score", flat=True)
        .first()
    )


def _refinement_row(iteration, provenance, candidate, ev, rows, evidence, sealed):
    return Refinement(
        iteration=iteration, agent_id=iteration.agent_id, proposed_params=candidate.params,
        rationale=candidate.rationale, source=candidate.source, train_metrics=ev.metrics,
        validation_metrics=sealed.metrics if sealed is not None else {}, score=ev.score,
        fold_metrics=ev.fold_metrics, selection_sharpe=ev.stats.sr,
        test_score=sealed.score if sealed is not None else None, dsr=evidence["dsr"],
        improvement_p=evidence["improvement_p"], evidence=evidence, criteria_results=rows, provenance=provenance,
    )


def _finish_success(iteration, outcome, started):
    current, sealed, proposal = outcome.current, outcome.current_sealed, outcome.proposal
    stats = outcome.statistics
    previous = _previous_score(iteration)
    best = max((ev.score for _c, ev, *_rest in outcome.candidates), default=None)
    version_id = iteration.agent.current_version_id
    with transaction.atomic():
        refinements = Refinement.objects.bulk_create(
            [_refinement_row(iteration, outcome.provenance, *judged) for judged in outcome.candidates]
        )
        for reading in outcome.readings:
            index = reading.candidate_index
            exam_record(
                agent_id=iteration.agent_id, purpose=reading.purpose, params=reading.params,
                window=outcome.window, score=reading.score, iteration_id=iteration.pk,
                version_id=version_id if index is None else None,
                refinement_id=refinements[index].pk if index is not None else None,
            )
        Trade.objects.bulk_create(
            [
                Trade(
                    iteration=iteration, version_id=version_id, side=t.side, entry_time=_aware(t.entry_time),
                    exit_time=_aware(t.exit_time), entry_price=t.entry_price, exit_price=t.exit_price,
                    return_pct=t.return_pct, pnl=t.pnl, bars_held=t.bars_held,
                )
                for t in sealed.trades
            ]
        )
        iteration.status = IterationStatus.SUCCEEDED
        iteration.version_id = version_id
        iteration.windows = outcome.windows
        iteration.train_metrics = current.metrics
        iteration.validation_metrics = sealed.metrics
        iteration.fold_metrics = current.fold_metrics
        iteration.selection_score = current.score
        iteration.selection_sharpe = current.stats.sr
        iteration.score = sealed.score
        iteration.dsr = stats["dsr"]
        iteration.pbo = stats["pbo"]
        iteration.n_trials = stats["n_trials"]
        iteration.evidence = stats
        iteration.best_candidate_score = best
        iteration.improvement = improvement_between(sealed.score, previous)
        iteration.refiner_used = proposal.refiner
        iteration.fallback_reason = proposal.fallback_reason
        iteration.llm_model = proposal.model
        iteration.llm_input_tokens = proposal.input_tokens
        iteration.llm_output_tokens = proposal.output_tokens
        iteration.finished_at = timezone.now()
        iteration.duration_ms = int((time.monotonic() - started) * 1000)
        iteration.save()
        rejected = [{"params": r.params, "reason": r.reason} for r in proposal.rejected]
        objective = iteration.agent.objective
        activity_log(
            iteration.agent,
            event="iteration_succeeded",
            message=f"Iteration #{iteration.number}: {objective} {sealed.score:.4f} on the sealed test window "
            f"(out of sample; DSR {_fmt(stats['dsr'])}, PBO {_fmt(stats['pbo'])}); selection score "
            f"{current.score:.4f} (in-sample); {len(refinements)} candidates (best selection score "
            f"{_fmt(best)}) by {proposal.refiner}.",
            details={
                "iteration": iteration.number,
                "score": sealed.score,
                "selection_score": current.score,
                "dsr": stats["dsr"],
                "pbo": stats["pbo"],
                "n_trials": stats["n_trials"],
                "improvement": iteration.improvement,
                "rejected_proposals": rejected,
                "fallback_reason": proposal.fallback_reason,
            },
        )
        if proposal.fallback_reason:
            activity_log(iteration.agent, event="refiner_fallback", message=proposal.fallback_reason,
                         details={"iteration": iteration.number, "refiner": iteration.agent.refiner})
        _after_success_hooks(iteration)
        announce_iteration_finished(iteration)
        metrics.iteration_finished(iteration.status, iteration.trigger, time.monotonic() - started)


def _after_success_hooks(iteration):
    """Runs inside the finishing transaction: auto-approval decides on the stored gate rows."""
    approval.iteration_auto_approve(iteration)


def _fmt(value):
    return "n/a" if value is None else f"{value:.4g}"


def _finish_failure(iteration, exc, started):
    message = _readable_error(exc)
    logger.warning("iteration %s of agent %s failed: %s", iteration.number, iteration.agent_id, message)
    with transaction.atomic():
        # Whatever the failed attempt wrote belongs to it; an iteration has no partial rows.
        Refinement.objects.filter(iteration=iteration).delete()
        Trade.objects.filter(iteration=iteration).delete()
        LearningIteration.objects.filter(pk=iteration.pk).update(
            status=IterationStatus.FAILED,
            error=message,
            finished_at=timezone.now(),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        iteration.status = IterationStatus.FAILED
        iteration.error = message
        activity_log(
            iteration.agent, event="iteration_failed", message=f"Iteration #{iteration.number} failed: {message}",
            details={"iteration": iteration.number, "error_type": type(exc).__name__},
        )
        announce_iteration_finished(iteration)
        metrics.iteration_finished(IterationStatus.FAILED, iteration.trigger, time.monotonic() - started)


def _readable_error(exc):
    name = type(exc).__name__
    if name == "SoftTimeLimitExceeded":
        return "time limit reached: the iteration took longer than LAB_ITERATION_SOFT_TIME_LIMIT"
    if isinstance(exc, SystemExit | KeyboardInterrupt):
        # What a pool process gets when its worker is stopped cold (a second SIGTERM or Ctrl-C).
        return "stopped by a cold shutdown of the worker"
    text = str(exc) or name
    return f"{name}: {text}" if not isinstance(exc, RefinerError) else text


def _aware(value):
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value
