"""Creating and editing agents. Each agent starts with version 1: the template's defaults
merged with the params given."""

import unicodedata

from django.conf import settings
from django.db import IntegrityError, transaction

from agents import agent_settings
from agents.models import (
    Instrument,
    RefinerChoice,
    StrategyVersion,
    TradingAgent,
    VersionOrigin,
)
from agents.services.activity import activity_log
from agents.services.agent_lock import AgentGone, lock_agent_row
from agents.services.ensembles import frozen_members
from agents.services.scheduling import agent_schedule_remove
from agents.strategies import ensemble
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import UnknownTemplateError, get_template
from core.errors import ValidationFailed

# What an owner may set, and each setting's type and bounds: agents.agent_settings; the rules
# beyond those are here (_service_rule).

# Control characters (ANSI escapes, NUL, ...) and invisible format characters (bidi overrides,
# zero-width) in a name would rewrite terminals and logs or disguise one agent as another.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _bad_characters(text, *, allow=""):
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _REFUSED_CATEGORIES
                   and c not in allow})


def _service_rule(name, value):
    """The rules beyond a setting's declared type and bounds, or None when it keeps them."""
    if name == "name":
        if not value:
            return "must not be blank"
        if bad := _bad_characters(value):
            return f"must not contain control or invisible characters (found {', '.join(bad)})"
    elif name == "description":
        if bad := _bad_characters(value, allow="\n\r\t"):
            return ("must not contain control or invisible characters other than newlines and tabs "
                    f"(found {', '.join(bad)})")
    elif name == "refiner" and value == RefinerChoice.CLAUDE and not settings.ANTHROPIC_API_KEY:
        return ("claude needs ANTHROPIC_API_KEY, which this lab does not have: choose 'auto' "
                "(Claude once a key is set, Optuna until then) or 'optuna'")
    return None


def _clean_settings(values, errors):
    declared = agent_settings.declared()
    clean = {}
    for name, value in values.items():
        setting = declared.get(name)
        if setting is None:
            errors[name] = "cannot be set here"
            continue
        if name == "name" and isinstance(value, str):
            value = value.strip()
        elif name == "description" and value is None:
            value = ""
        checked, problem = setting.check(value)
        problem = problem or _service_rule(name, checked)
        if problem:
            errors[name] = problem
        else:
            clean[name] = checked
    return clean


def _related_instruments(symbols, errors):
    """The instruments named by ``symbols`` (a list of symbols), or None with errors["related_instruments"]
    saying which are unknown. Instruments (the console form's choice) pass as they are."""
    if not isinstance(symbols, list | tuple):
        errors["related_instruments"] = "must be a list of instrument symbols"
        return None
    if all(isinstance(item, Instrument) for item in symbols):
        return list(symbols)
    if not all(isinstance(item, str) for item in symbols):
        errors["related_instruments"] = "must be a list of instrument symbols"
        return None
    found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=symbols)}
    unknown = sorted({s for s in symbols if s not in found})
    if unknown:
        errors["related_instruments"] = f"unknown instrument symbol(s): {', '.join(unknown)}"
        return None
    return list({s: found[s] for s in symbols}.values())


_NO_PEER_SHARING = ("must be false for an ensemble: its candidates are its members' versions, not a search "
                    "that peers' trials could warm-start")


def _ensemble_params(owner, instrument, template, params, members, errors):
    """``params`` with the members' frozen strategies for an ensemble (errors under ``members``); a
    ``members`` list for any other template is an error."""
    if template is None or template.key != ensemble.KEY:
        if members is not None:
            errors["members"] = "only an ensemble (strategy_template 'ensemble') has members"
        return params
    if isinstance(params, dict) and "members" in params:
        errors["params.members"] = "is set from `members` (the member agents' ids), not given as params"
        return params
    if members is None:
        errors["members"] = "is required for an ensemble: a list of at least 2 agent ids"
        return params
    if instrument is None:
        return params
    try:
        frozen = frozen_members(owner=owner, instrument=instrument, member_ids=members)
    except ValidationFailed as exc:
        errors.update(exc.errors)
        return params
    return {**(params if isinstance(params, dict) else {}), "members": frozen}


def agent_create(*, owner, name, instrument, strategy_template, params=None, related_instruments=None,
                 members=None, **settings_values):
    """Create an agent and its initial version. Raises ValidationFailed naming each bad field.

    An ensemble (``strategy_template="ensemble"``) takes ``members``, the member agents' ids; its
    version 1 freezes their current versions (agents.services.ensembles)."""
    errors = {}
    related = _related_instruments(related_instruments, errors) if related_instruments is not None else []
    if not isinstance(instrument, Instrument):
        found = Instrument.objects.filter(symbol=instrument).first()
        if found is None:
            errors["instrument"] = f"unknown instrument '{instrument}'"
        instrument = found
    try:
        template = get_template(strategy_template)
    except UnknownTemplateError as exc:
        errors["strategy_template"] = str(exc.args[0] if exc.args else exc)
        template = None
    clean = _clean_settings({"name": name, **settings_values}, errors)
    params = _ensemble_params(owner, instrument, template, params, members, errors)
    if template is not None and template.key == ensemble.KEY and clean.get("share_peer_trials"):
        errors["share_peer_trials"] = _NO_PEER_SHARING
    clean_params = None
    # An ensemble's params are complete only once its members are frozen (which needs the instrument).
    incomplete = template is not None and template.key == ensemble.KEY and errors.keys() & {
        "members", "params.members", "instrument"}
    if template is not None and not incomplete:
        try:
            clean_params = template.validate(params or {})
        except ParamValidationError as exc:
            errors.update({f"params.{k}": v for k, v in exc.errors.items()})
    warnings = []
    if template is not None and instrument is not None and clean_params is not None:
        refusal, warnings = template.range_problems(instrument, clean_params)
        if refusal:
            errors["strategy_template"] = refusal
    if not errors and TradingAgent.objects.filter(owner=owner, name=clean["name"]).exists():
        errors["name"] = f"you already have an agent named '{clean['name']}'"
    if errors:
        raise ValidationFailed(errors)
    try:
        with transaction.atomic():
            agent = TradingAgent.objects.create(
                owner=owner, instrument=instrument, strategy_template=template.key, **clean
            )
            version = StrategyVersion.objects.create(
                agent=agent, number=1, params=clean_params, origin=VersionOrigin.INITIAL, created_by=owner
            )
            agent.current_version = version
            agent.save(update_fields=["current_version"])
            if related:
                agent.related_instruments.set(related)
            activity_log(
                agent,
                event="agent_created",
                message=f"Agent created on {instrument.symbol} with {template.key} (v1)."
                + "".join(f" Warning: {w}." for w in warnings),
                actor=owner,
                details={"params": clean_params, **({"warnings": warnings} if warnings else {})},
            )
    except IntegrityError:
        raise ValidationFailed({"name": f"you already have an agent named '{clean['name']}'"})
    return agent


def agent_update(agent, *, actor, **values):
    """Edit an agent's settings (not its status or version: those have their own services)."""
    errors = {}
    related = None
    if "related_instruments" in values:
        related = _related_instruments(values.pop("related_instruments"), errors)
    if values.get("refiner") == agent.refiner:
        values.pop("refiner")  # unchanged: an existing choice is not re-judged (e.g. claude after its key went)
    editable = agent_settings.declared()
    for key in values:
        if key not in editable:
            errors[key] = "is read-only here" if hasattr(agent, key) else "unknown field"
    clean = _clean_settings({k: v for k, v in values.items() if k in editable}, errors)
    if agent.strategy_template == ensemble.KEY and clean.get("share_peer_trials"):
        errors["share_peer_trials"] = _NO_PEER_SHARING
    if "name" in clean and not errors:
        clash = TradingAgent.objects.filter(owner=agent.owner, name=clean["name"]).exclude(pk=agent.pk)
        if clash.exists():
            errors["name"] = f"you already have an agent named '{clean['name']}'"
    if errors:
        raise ValidationFailed(errors)
    changed = {k: v for k, v in clean.items() if getattr(agent, k) != v}
    if related is not None:
        before = sorted(agent.related_instruments.values_list("symbol", flat=True))
        if sorted(i.symbol for i in related) != before:
            changed["related_instruments"] = sorted(i.symbol for i in related)
    if not changed:
        return agent
    with transaction.atomic():
        for key, value in changed.items():
            if key == "related_instruments":
                agent.related_instruments.set(related)
            else:
                setattr(agent, key, value)
        agent.save(update_fields=[*(k for k in changed if k != "related_instruments"), "updated_at"])
        activity_log(agent, event="agent_updated", message=f"Settings changed: {', '.join(sorted(changed))}.",
                     actor=actor,
                     details={"changed": changed})
    return agent


def agent_delete(agent, *, actor):
    """Delete an agent and everything it owns, also while one of its iterations runs: the worker
    then drops that iteration's outcome with one log line (agents.services.agent_lock)."""
    try:
        with transaction.atomic():
            lock_agent_row(agent.pk)  # waits for an iteration's outcome being written, if any
            agent_schedule_remove(agent.pk)
            agent.delete()
    except AgentGone:
        pass  # a concurrent request deleted it first: what was asked for is done
