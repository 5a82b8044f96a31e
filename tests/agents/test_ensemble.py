"""Ensembles: the average of their members' targets, their creation rules, their learning."""

import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from agents.evaluation.backtests import evaluate_selection, evaluate_selections
from agents.evaluation.protocol import split_protocol
from agents.models import ActivityLog, IterationStatus, IterationTrigger, Refinement, StrategyVersion, TradingAgent
from agents.refiners.base import params_key, schema_key
from agents.refiners.factory import get_refiner
from agents.services import approval, decisions, learning
from agents.services.agents import agent_create, agent_update
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import all_templates, get_template, listed_templates, template_choices
from core.errors import ValidationFailed
from tests.agents.test_backtest_batch import BARS
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

ENSEMBLE = get_template("ensemble")
A, B, C = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
MEMBERS = [
    {"agent": A, "template": "sma_crossover", "params": {"fast": 5, "slow": 20, "long_only": False}},
    {"agent": B, "template": "rsi_reversion", "params": {"period": 7}},
    {"agent": C, "template": "donchian_breakout", "params": {"long_only": False}},
]


def member_mean(bars, members):
    """The definition, computed here: each member's template alone, then the plain mean."""
    rows = [get_template(m["template"]).target_positions(bars, m["params"]) for m in members]
    return np.mean(np.vstack(rows), axis=0)


# --- the template -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3])
def test_targets_are_the_mean_of_the_members_targets(n):
    members = MEMBERS[:n]
    target = ENSEMBLE.target_positions(BARS, {"members": members})
    expected = member_mean(BARS, members)
    np.testing.assert_allclose(target, expected, rtol=0, atol=1e-12)
    # Not a degenerate case: the members disagree on some bars, so the mean is fractional there.
    assert np.any((np.abs(target) > 0) & (np.abs(target) < 1))
    assert target.min() >= -1 and target.max() <= 1


def test_batch_path_equals_the_single_path():
    sets = [{"members": MEMBERS[:2]}, {"members": MEMBERS}, {"members": MEMBERS[1:], "stop_loss": 0.03},
            {"members": MEMBERS[:2]}]
    matrix = ENSEMBLE.target_matrix(BARS, sets)
    for row, params in zip(matrix, sets, strict=True):
        np.testing.assert_allclose(row, ENSEMBLE.target_positions(BARS, params), rtol=0, atol=1e-12)
    agent = SimpleNamespace(fee_bps=1.0, slippage_bps=2.0, initial_capital=100_000.0, objective="sharpe")
    protocol = split_protocol(len(BARS), test_fraction=0.2, n_folds=5)
    clean = [ENSEMBLE.validate(p) for p in sets]
    batch = evaluate_selections(agent, ENSEMBLE, clean, BARS, protocol, 252)
    for params, ev in zip(clean, batch, strict=True):
        alone = evaluate_selection(agent, ENSEMBLE, params, BARS, protocol, 252)
        np.testing.assert_allclose(ev.returns, alone.returns, rtol=0, atol=1e-12)
        assert ev.score == pytest.approx(alone.score, abs=1e-12)


@pytest.mark.parametrize(("params", "words"), [
    ({}, "is required"),
    ({"members": MEMBERS[:1]}, "between 2 and 10"),
    ({"members": [MEMBERS[0], MEMBERS[0]]}, "listed twice"),
    ({"members": [MEMBERS[0], {**MEMBERS[1], "template": "ensemble"}]}, "an ensemble cannot be a member"),
    ({"members": [MEMBERS[0], {**MEMBERS[1], "params": {"period": 0}}]}, "member 2: params: period"),
    ({"members": [MEMBERS[0], {**MEMBERS[1], "agent": "nope"}]}, "a UUID"),
    ({"members": [MEMBERS[0], {"agent": B, "template": "rsi_reversion"}]}, "exactly agent, template and params"),
    ({"members": "A,B"}, "must be a list"),
])
def test_validate_names_members_and_the_rule(params, words):
    with pytest.raises(ParamValidationError) as caught:
        ENSEMBLE.validate(params)
    assert words in caught.value.errors["members"]


def test_validate_keeps_its_own_stops_and_refuses_other_params():
    clean = ENSEMBLE.validate({"members": MEMBERS[:2], "take_profit": 0.2})
    assert (clean["stop_loss"], clean["take_profit"]) == (0.0, 0.2)
    assert clean["members"][0]["params"]["slow"] == 20 and clean["members"][1]["params"]["oversold"] == 30.0
    with pytest.raises(ParamValidationError) as caught:
        ENSEMBLE.validate({"members": MEMBERS[:2], "long_only": True, "stop_loss": 0.9})
    assert set(caught.value.errors) == {"long_only", "stop_loss"}


def test_trial_keys_of_nested_params_match_and_hash():
    clean = ENSEMBLE.validate({"members": MEMBERS})
    key = params_key(clean)
    hash(key)
    assert schema_key(ENSEMBLE)(clean) == key
    other = ENSEMBLE.validate({"members": [MEMBERS[0], {**MEMBERS[1], "params": {"period": 8}}, MEMBERS[2]]})
    assert params_key(other) != key


def test_not_a_parameterised_template_but_listed_and_its_own_refiner():
    assert ENSEMBLE not in all_templates() and "ensemble" not in dict(template_choices())
    assert listed_templates()[-1] is ENSEMBLE
    assert get_refiner("claude", template=ENSEMBLE, api_key_configured=False).name == "ensemble"
    assert get_refiner("optuna", template=get_template("sma_crossover")).name == "optuna"


# --- creation ---------------------------------------------------------------------------------

@pytest.fixture
def world(db):
    owner = UserFactory()
    instrument = random_walk_bars(InstrumentFactory(), n=700, seed=5)
    fast = make_agent(owner=owner, instrument=instrument, params={"fast": 5, "slow": 20, "long_only": False})
    rsi = make_agent(owner=owner, instrument=instrument, template="rsi_reversion", params={"period": 7})
    return SimpleNamespace(owner=owner, instrument=instrument, members=[fast, rsi])


def make_ensemble(world, **kwargs):
    return make_agent(owner=world.owner, instrument=world.instrument, template="ensemble",
                      members=[str(m.pk) for m in world.members], **kwargs)


def test_create_freezes_the_members_current_versions(world):
    agent = make_ensemble(world, params={"stop_loss": 0.05})
    params = agent.current_version.params
    assert params["stop_loss"] == 0.05
    assert params["members"] == [
        {"agent": str(m.pk), "template": m.strategy_template, "params": m.current_version.params}
        for m in world.members]


def test_create_refuses_each_bad_members_list_and_writes_nothing(world):
    other_instrument = random_walk_bars(InstrumentFactory(), n=50)
    elsewhere = make_agent(owner=world.owner, instrument=other_instrument)
    strangers = make_agent(instrument=world.instrument)
    nested = make_ensemble(world)
    ids = [str(m.pk) for m in world.members]
    cases = [
        (ids[:1], "members", "between 2 and 10"),
        ([ids[0], ids[0]], "members", "listed twice"),
        ([ids[0], str(elsewhere.pk)], "members", f"trades {other_instrument.symbol}"),
        ([ids[0], str(strangers.pk)], "members", "no agent of yours"),
        ([ids[0], str(uuid.uuid4())], "members", "no agent of yours"),
        ([ids[0], str(nested.pk)], "members", "cannot be a member"),
        ([ids[0], "42"], "members", "not an agent id"),
        ("x", "members", "must be a list"),
        ([str(uuid.uuid4()) for _ in range(11)], "members", "between 2 and 10"),
        (None, "members", "is required"),
    ]
    before = TradingAgent.objects.count()
    for members, field, words in cases:
        with pytest.raises(ValidationFailed) as caught:
            make_agent(owner=world.owner, instrument=world.instrument, template="ensemble", members=members)
        assert words in caught.value.errors[field], (members, caught.value.errors)
    with pytest.raises(ValidationFailed) as caught:
        make_agent(owner=world.owner, instrument=world.instrument, members=ids)
    assert "only an ensemble" in caught.value.errors["members"]
    with pytest.raises(ValidationFailed) as caught:
        make_agent(owner=world.owner, instrument=world.instrument, template="ensemble", members=ids,
                   params={"members": []})
    assert "params.members" in caught.value.errors
    with pytest.raises(ValidationFailed) as caught:
        make_ensemble(world, share_peer_trials=True)
    assert "an ensemble" in caught.value.errors["share_peer_trials"]
    with pytest.raises(ValidationFailed) as caught:
        make_agent(owner=world.owner, instrument="NOPE", template="ensemble", members=ids)
    assert set(caught.value.errors) == {"instrument"}  # not also "params.members is required"
    assert TradingAgent.objects.count() == before

    agent = make_ensemble(world)
    with pytest.raises(ValidationFailed) as caught:
        agent_update(agent, actor=world.owner, share_peer_trials=True)
    assert "an ensemble" in caught.value.errors["share_peer_trials"]
    agent.refresh_from_db()
    assert not agent.share_peer_trials


def test_api_creates_an_ensemble_and_names_members_on_a_bad_list(world):
    client = APIClient()
    client.force_authenticate(world.owner)
    ids = [str(m.pk) for m in world.members]
    body = {"name": "Blend", "instrument": world.instrument.symbol, "strategy_template": "ensemble"}
    resp = client.post("/api/learning-agents", {**body, "members": ids[:1]}, format="json")
    assert resp.status_code == 400 and "between 2 and 10" in str(resp.data["members"])
    resp = client.post("/api/learning-agents", {**body, "members": ids}, format="json")
    assert resp.status_code == 201, resp.data
    assert [m["agent"] for m in resp.data["current_version"]["params"]["members"]] == ids
    listed = client.get("/api/strategies").data
    assert listed[-1]["key"] == "ensemble" and listed[-1]["params"]["members"]["min"] == 2


# --- learning ---------------------------------------------------------------------------------
def new_member_version(member, **params):
    version = StrategyVersion.objects.create(
        agent=member, number=member.current_version.number + 1, origin="manual", created_by=member.owner,
        params=get_template(member.strategy_template).validate({**member.current_version.params, **params}))
    member.current_version = version
    member.save(update_fields=["current_version"])
    return version


def test_an_iteration_proposes_the_members_new_versions_and_the_gate_judges_them(world):
    agent = make_ensemble(world)
    first, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert first.status == IterationStatus.SUCCEEDED, first.error
    assert first.refiner_used == "ensemble" and not Refinement.objects.filter(iteration=first).exists()
    details = ActivityLog.objects.filter(agent=agent, event="iteration_succeeded").latest("id").details
    assert "no member has a new version" in details["rejected_proposals"][0]["reason"]
    # The headline is the ensemble's own: its averaged targets on the sealed window.
    assert first.score is not None and first.evidence["test_bars"] > 0

    new_member_version(world.members[0], fast=8)
    agent.refresh_from_db()
    second, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert second.status == IterationStatus.SUCCEEDED, second.error
    (refinement,) = Refinement.objects.filter(iteration=second)
    assert refinement.source == "ensemble"
    expected = [{"agent": str(m.pk), "template": m.strategy_template, "params": m.current_version.params}
                for m in world.members]
    assert refinement.proposed_params["members"] == expected
    rules = {row["criterion"] for row in refinement.criteria_results}
    assert {"min_dsr", "max_improvement_p"} <= rules, rules
    assert refinement.dsr is not None and refinement.improvement_p is not None

    # Applied, it is the ensemble's new version; nothing is new after that.
    decisions.refinement_approve(refinement, actor=world.owner)
    decisions.refinements_apply(agent, actor=world.owner)
    agent.refresh_from_db()
    assert agent.current_version.params["members"] == expected
    third, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert third.status == IterationStatus.SUCCEEDED and not Refinement.objects.filter(iteration=third).exists()


def test_a_deleted_member_leaves_the_ensemble_trading_its_frozen_members(world):
    agent = make_ensemble(world)
    world.members[1].delete()
    iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    details = ActivityLog.objects.filter(agent=agent, event="iteration_succeeded").latest("id").details
    assert "was deleted" in details["rejected_proposals"][0]["reason"]


@pytest.mark.parametrize(("thresholds", "applied"), [
    # Everything lenient: the refreshed members pass the gate on the ensemble's evidence.
    ({"min_dsr": 0.0, "max_improvement_p": 1.0, "max_test_shortfall": 100.0, "min_fold_pass": 1,
      "min_win_rate": 0.0, "min_sharpe_ratio": -10.0, "min_signals": 0, "min_total_return": -1.0,
      "require_improvement": False}, True),
    # A deflated Sharpe no strategy reaches: the same candidate is refused, the ensemble unchanged.
    ({"min_dsr": 1.0}, False),
], ids=["lenient-gate-applies", "strict-gate-refuses"])
def test_auto_approval_decides_an_ensemble_on_its_own_evidence(world, thresholds, applied):
    agent = make_ensemble(world)
    approval.thresholds_set(agent, thresholds, actor=world.owner, partial=True)
    approval.auto_approve_enable(agent, actor=world.owner)
    new_member_version(world.members[1], period=9)
    agent.refresh_from_db()
    before = agent.current_version_id
    iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    (refinement,) = Refinement.objects.filter(iteration=iteration)
    agent.refresh_from_db()
    assert refinement.decided_automatically
    failed = [row["criterion"] for row in refinement.criteria_results if not row["passed"]]
    if applied:
        assert not failed and refinement.status == "applied"
        assert agent.current_version.params["members"][1]["params"]["period"] == 9
    else:
        assert "min_dsr" in failed and refinement.status == "rejected"
        assert agent.current_version_id == before


def test_create_agent_command_takes_members(world):
    ids = [str(m.pk) for m in world.members]
    args = ["create_agent", "--owner", world.owner.username, "--instrument", world.instrument.symbol,
            "--template", "ensemble"]
    with pytest.raises(CommandError, match="members: an ensemble needs between 2 and 10"):
        call_command(*args, "--name", "one", "--member", ids[0])
    call_command(*args, "--name", "two", *[x for i in ids for x in ("--member", i)], "--param", "stop_loss=0.1")
    agent = TradingAgent.objects.get(name="two")
    assert [m["agent"] for m in agent.current_version.params["members"]] == ids
    assert agent.current_version.params["stop_loss"] == 0.1


def test_members_may_be_given_as_uuid_objects_as_well_as_strings(world):
    # What a caller holding model pks passes (console/demo.py does): the same ensemble as strings.
    agent = agent_create(owner=world.owner, name="by pk", instrument=world.instrument,
                         strategy_template="ensemble", members=[m.pk for m in world.members])
    assert [m["agent"] for m in agent.current_version.params["members"]] == [str(m.pk) for m in world.members]
