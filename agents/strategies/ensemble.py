"""Ensemble: the equal-weight average of several agents' target positions (issue 16 §4).

An ensemble's params freeze its members' strategies, so a version is reproducible without
reading any other agent:

    {"members": [{"agent": "<uuid>", "template": "sma_crossover", "params": {...cleaned...}}, ...],
     "stop_loss": 0.0, "take_profit": 0.0}

target_t = (1 / M) * sum_m target_m,t, where target_m is member m's template's target positions
on the same bars with its frozen params (its own long_only applied, NaN -> 0). Equal weights: a
weighting would be a parameter fitted on the data the gate then judges, and M is small.

What the ensemble trades is one position, so the engine's stops are the ensemble's own
``stop_loss`` / ``take_profit``, applied to that position. A member's frozen ``stop_loss`` and
``take_profit`` are kept (they are its version) but not applied: a stop is a rule of a trade's
path in the engine, not part of a member's target positions.

The template is pure: which agents may be members (visible to the owner, same instrument, no
ensemble) is the service's rule (agents.services.ensembles); this module checks the structure.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from agents.strategies.base import COMMON_PARAMS, ParamSpec, ParamValidationError, StrategyTemplate

KEY = "ensemble"
MIN_MEMBERS = 2
MAX_MEMBERS = 10
_MEMBER_KEYS = {"agent", "template", "params"}

MEMBERS_SPEC = ParamSpec("members", "members", (), MIN_MEMBERS, MAX_MEMBERS,
                         "The member agents' frozen strategies: [{agent, template, params}], "
                         f"{MIN_MEMBERS} to {MAX_MEMBERS}; set from the member agents' current versions.")
_STOPS = tuple(spec for spec in COMMON_PARAMS if spec.name in ("stop_loss", "take_profit"))


def _unused_signal(bars, params):  # the ensemble writes its targets itself (_target_into)
    raise NotImplementedError


@dataclass(frozen=True)
class EnsembleTemplate(StrategyTemplate):
    # The templates a member may have, by key (the registry's parameterised ones: no nesting).
    member_templates: Mapping = field(default_factory=dict)
    refiner: str = "ensemble"  # its candidates are its members' versions, not a search

    @property
    def params(self):
        return (MEMBERS_SPEC, *_STOPS)

    def validate(self, params, *, fill_defaults=True):
        if not isinstance(params, Mapping):
            raise ParamValidationError({"params": "must be an object of parameter values"})
        errors = {}
        known = {p.name for p in self.params}
        for name in params:
            if name not in known:
                errors[name] = f"unknown parameter for template '{self.key}' (known: {', '.join(sorted(known))})"
        clean = {}
        if "members" in params:
            try:
                clean["members"] = self._members(params["members"])
            except ValueError as exc:
                errors["members"] = str(exc)
        else:
            errors["members"] = "is required"
        for spec in _STOPS:
            if spec.name in params:
                try:
                    clean[spec.name] = spec.check(params[spec.name])
                except ValueError as exc:
                    errors[spec.name] = str(exc)
            elif fill_defaults:
                clean[spec.name] = spec.default
            else:
                errors[spec.name] = "is required"
        if errors:
            raise ParamValidationError(errors)
        return clean

    def _members(self, members):
        if not isinstance(members, list | tuple):
            raise ValueError("must be a list of {agent, template, params} objects")
        if not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"must have between {MIN_MEMBERS} and {MAX_MEMBERS} members (got {len(members)})")
        clean, seen = [], set()
        for i, member in enumerate(members):
            where = f"member {i + 1}"
            if not isinstance(member, Mapping) or set(member) != _MEMBER_KEYS:
                raise ValueError(f"{where}: must be an object with exactly agent, template and params")
            try:
                agent = str(uuid.UUID(str(member["agent"])))
            except ValueError:
                raise ValueError(f"{where}: agent must be an agent id (a UUID)") from None
            if agent in seen:
                raise ValueError(f"{where}: agent {agent} is listed twice")
            seen.add(agent)
            template = self.member_templates.get(member["template"]) if isinstance(member["template"], str) else None
            if template is None:
                raise ValueError(f"{where}: template must be one of {', '.join(self.member_templates)} "
                                 "(an ensemble cannot be a member)")
            try:
                params = template.validate(member["params"])
            except ParamValidationError as exc:
                raise ValueError(f"{where}: params: {exc}") from None
            clean.append({"agent": agent, "template": template.key, "params": params})
        return clean

    def defaults(self):
        return {"members": [], **{spec.name: spec.default for spec in _STOPS}}

    def schema(self):
        members = {"type": "members", "default": [], "min": MIN_MEMBERS, "max": MAX_MEMBERS,
                   "description": MEMBERS_SPEC.description}
        return {"members": members, **{spec.name: spec.as_schema() for spec in _STOPS}}

    def range_problems(self, instrument, params):
        for member in (params or {}).get("members", ()):
            template = self.member_templates[member["template"]]
            refusal, _member_warnings = template.range_problems(instrument, {})
            if refusal:
                return f"member agent {member['agent']}: {refusal}", []
        _none, warnings = super().range_problems(instrument, params)
        return None, warnings

    def _target_into(self, bars, clean, out):
        """The members' targets summed in their order, then divided by M: the same bits alone and
        in a batch (target_matrix's shared indicators return the same values)."""
        scratch = np.empty(len(bars))
        out[:] = 0.0
        for member in clean["members"]:
            self.member_templates[member["template"]]._target_into(bars, member["params"], scratch)
            out += scratch
        out /= len(clean["members"])
        return out


def make_template(member_templates):
    return EnsembleTemplate(
        key=KEY,
        name="Ensemble",
        description=(
            "Trades the equal-weight average of its member agents' target positions (2 to 10 agents on "
            "the same instrument, no ensembles), each computed by the member's template with the params "
            "frozen in the ensemble's version. Its learning refreshes the members' current versions as one "
            "candidate, judged like any other. Create it with `members` (agent ids); its own stop_loss and "
            "take_profit apply to the averaged position, the members' stops are not applied."
        ),
        own_params=(),
        signal=_unused_signal,
        member_templates=dict(member_templates),
    )
