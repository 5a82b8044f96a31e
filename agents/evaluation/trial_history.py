"""The agent's stored trials, read incrementally: each iteration reads only the rows stored since
the last one (issue 13: the cost of N, V and the trials read must not grow with history).

Order (the same for the full scan and the incremental read): by iteration, in the order the
iterations finished; within one, the evaluated version first, then its candidates by id. That is
the order in which they were recorded, so "the latest evaluation of a set" means what it says.

Why a watermark of two ids is enough: an agent has at most one queued or running iteration (the
``one_active_iteration_per_agent`` constraint), and its rows (its refinements, its status turning
to succeeded) are written by one transaction under the agent's row lock
(agents.services.agent_lock). So for one agent, the iteration ids and refinement ids that become
visible only grow: a row this process has not read yet always has a larger id than the ones it
has; rows that still sort before the ones read (added by hand or by a script to an old iteration)
make it read everything again. Each process keeps its own cache (a bounded LRU of agents), keyed by the agent's id and
creation time: a deleted agent's id reused (SQLite reuses ids after a rollback) starts afresh.
A database restored to an earlier point while workers run is the one case it cannot see: restart
the workers after a restore.
"""

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from agents.models import IterationStatus, LearningIteration, Refinement
from agents.refiners.base import schema_key

_CACHE_SIZE = 256  # agents per process; about 0.3 kB a trial, so 5,000 trials is ~1.5 MB an agent
_VERSION, _CANDIDATE = 0, 1


@dataclass(frozen=True)
class Trial:
    params: dict
    score: float | None  # selection score (validation score for rows from before the protocol)
    selection_sharpe: float | None  # per bar; None before the protocol


def stored_trials(agent, after_refinement=0, after_iteration=0):
    """(trials in the order above, their first and last sort keys, last refinement id, last
    iteration id) stored after the two ids (two queries)."""
    refinements = Refinement.objects.filter(agent=agent, id__gt=after_refinement).values_list(
        "id", "iteration_id", "proposed_params", "score", "selection_sharpe")
    iterations = LearningIteration.objects.filter(
        agent=agent, status=IterationStatus.SUCCEEDED, version__isnull=False, id__gt=after_iteration
    ).values_list("id", "version__params", "score", "selection_score", "selection_sharpe")
    rows = [((iteration, _CANDIDATE, pk), Trial(params, score, sharpe))
            for pk, iteration, params, score, sharpe in refinements]
    last_refinement = max((order[2] for order, _t in rows), default=after_refinement)
    rows += [((pk, _VERSION, pk), Trial(params, selection if selection is not None else score, sharpe))
             for pk, params, score, selection, sharpe in iterations]
    last_iteration = max((order[0] for order, _t in rows if order[1] == _VERSION), default=after_iteration)
    rows.sort(key=lambda row: row[0])
    span = (rows[0][0], rows[-1][0]) if rows else None
    return [trial for _order, trial in rows], span, last_refinement, last_iteration


def agent_trials(agent):
    """Every parameter set this agent evaluated, oldest first: the full scan (two queries)."""
    return stored_trials(agent)[0]


def add_distinct(by_key, key_of, trials):
    """Fold ``trials`` into ``by_key`` ({params_key: Trial}, the latest evaluation of each distinct
    set; the order of a dict is that of each set's latest evaluation). A trial without a
    selection Sharpe keeps the one of an earlier evaluation of the same set."""
    for trial in trials:
        if not isinstance(trial.params, Mapping):
            continue
        key = key_of(trial.params)
        previous = by_key.pop(key, None)
        sharpe = trial.selection_sharpe if trial.selection_sharpe is not None else (
            previous.selection_sharpe if previous else None)
        by_key[key] = Trial(trial.params, trial.score, sharpe)
    return by_key


@dataclass
class History:
    """An agent's stored trials as last read: all of them in order, and the distinct ones."""

    created_at: object
    template: str
    last_order: tuple = ()  # the sort key of the last trial read
    refinement_id: int = 0
    iteration_id: int = 0
    trials: list = field(default_factory=list)
    by_key: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)  # {params_key: latest score}: RefinerContext.evaluated


_histories = OrderedDict()
_lock = threading.Lock()


def agent_history(agent, template):
    """(trials oldest first, {params_key: Trial}, {params_key: latest score}) for ``agent``: copies
    the caller may extend, equal to reading everything again (``agent_trials``, then
    ``add_distinct``), at the cost of the rows stored since the last call (two queries)."""
    with _lock:
        entry = _histories.get(agent.pk)
        if entry is None or entry.created_at != agent.created_at or entry.template != template.name:
            entry = History(agent.created_at, template.name)
            _histories[agent.pk] = entry
        new, span, refinement_id, iteration_id = stored_trials(agent, entry.refinement_id, entry.iteration_id)
        if span is not None and span[0] < entry.last_order:
            # Rows that sort before what was read (a refinement added to an old iteration by
            # hand or by a script): read everything again, as a full scan would.
            entry = History(agent.created_at, template.name)
            _histories[agent.pk] = entry
            new, span, refinement_id, iteration_id = stored_trials(agent)
        if span is not None:
            entry.last_order = span[1]
        entry.refinement_id, entry.iteration_id = refinement_id, iteration_id
        entry.trials.extend(new)
        key_of = schema_key(template)
        add_distinct(entry.by_key, key_of, new)
        entry.scores.update((key_of(t.params), t.score) for t in new if isinstance(t.params, Mapping))
        _histories.move_to_end(agent.pk)
        while len(_histories) > _CACHE_SIZE:
            _histories.popitem(last=False)
        return list(entry.trials), dict(entry.by_key), dict(entry.scores)
