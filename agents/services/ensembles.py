"""Ensembles' members: which agents may be members, and their strategies frozen into params.

An ensemble (agents.strategies.ensemble) trades the average of its members' target positions. Its
members are other agents its owner may see (agents.selectors.agents_visible_to), on the ensemble's
instrument, none of them an ensemble (no nesting), each once, at least 2. Each member's strategy is
frozen (template and cleaned params of its current version) into the ensemble's version, so an
ensemble's version never changes when a member learns: the refresh below proposes the members'
newer versions as a candidate, which the gate judges like any other.
"""

import uuid

from agents.selectors import agents_visible_to
from agents.strategies import ensemble
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import get_template
from core.errors import ValidationFailed


def _member_ids(member_ids):
    """The ids as UUID strings in their order; ValueError naming the rule."""
    if not isinstance(member_ids, list | tuple):
        raise ValueError("must be a list of agent ids")
    count = (f"an ensemble needs between {ensemble.MIN_MEMBERS} and {ensemble.MAX_MEMBERS} distinct member "
             f"agents (got {len(member_ids)})")
    if len(member_ids) > ensemble.MAX_MEMBERS:  # before the loop: its duplicate check is quadratic
        raise ValueError(count)
    ids = []
    for raw in member_ids:
        try:
            ids.append(str(raw) if isinstance(raw, uuid.UUID) else str(uuid.UUID(raw)) if isinstance(raw, str)
                       else None)
        except ValueError:
            ids.append(None)
        if ids[-1] is None:
            raise ValueError(f"{raw!r} is not an agent id (a UUID)")
        if ids.count(ids[-1]) > 1:
            raise ValueError(f"agent {ids[-1]} is listed twice")
    if len(ids) < ensemble.MIN_MEMBERS:
        raise ValueError(count)
    return ids


def _frozen(agent):
    template = get_template(agent.strategy_template)
    return {"agent": str(agent.pk), "template": template.key,
            "params": template.validate(agent.current_version.params)}


def frozen_members(*, owner, instrument, member_ids):
    """The members' frozen strategies ([{agent, template, params}], in the order given); raises
    ValidationFailed naming ``members`` and the rule."""
    try:
        ids = _member_ids(member_ids)
    except ValueError as exc:
        raise ValidationFailed({"members": str(exc)}) from None
    found = {str(a.pk): a for a in agents_visible_to(owner).filter(pk__in=ids).select_related(
        "instrument", "current_version")}
    frozen = []
    for agent_id in ids:
        agent = found.get(agent_id)
        # Another owner's agent reads as no agent, as it does everywhere (404 on its own URL).
        problem = _member_problem(agent, instrument) if agent else f"no agent of yours has id {agent_id}"
        if problem:
            raise ValidationFailed({"members": problem})
        try:
            frozen.append(_frozen(agent))
        except ParamValidationError as exc:  # a version stored before a template's rule changed
            raise ValidationFailed({"members": f"agent {agent.name!r}: its current version is not valid "
                                               f"any more ({exc})"}) from None
    return frozen


def _member_problem(agent, instrument):
    if agent.strategy_template == ensemble.KEY:
        return f"agent {agent.name!r} is an ensemble, and an ensemble cannot be a member (no nesting)"
    if agent.instrument_id != getattr(instrument, "pk", None):
        return (f"agent {agent.name!r} trades {agent.instrument.symbol}: every member must trade the "
                f"ensemble's instrument ({getattr(instrument, 'symbol', instrument)})")
    if agent.current_version_id is None:
        return f"agent {agent.name!r} has no current version"
    return ""


def refreshed_params(agent, params):
    """(the ensemble's cleaned ``params`` with every member's current version frozen anew, "") when a
    member changed since; (None, why not) otherwise. Read by the learning service before the refiner
    is asked (refiners never touch the database)."""
    members = params["members"]
    ids = [m["agent"] for m in members]
    found = {str(a.pk): a for a in agents_visible_to(agent.owner).filter(pk__in=ids).select_related(
        "instrument", "current_version")}
    refreshed = []
    for member in members:
        current = found.get(member["agent"])
        problem = (_member_problem(current, agent.instrument) if current
                   else f"member agent {member['agent']} was deleted or is no longer visible to the owner")
        if not problem:
            try:
                refreshed.append(_frozen(current))
            except ParamValidationError as exc:
                problem = f"member agent {current.name!r}: its current version is not valid any more ({exc})"
        if problem:
            return None, f"{problem}; the ensemble keeps its frozen members"
    if refreshed == members:
        return None, "no member has a new version since the ensemble's current version: nothing new to evaluate"
    return {**params, "members": refreshed}, ""
