import math

import pytest
from rest_framework.test import APIClient

from agents.models import (
    ActivityLog,
    AgentStatus,
    IterationStatus,
    Refinement,
    RefinementStatus,
    StrategyVersion,
    TradingAgent,
    VersionOrigin,
)
from agents.services import approval, decisions, learning
from agents.services.errors import ValidationFailed
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db

# Every candidate of a random walk passes these (the engine caps nothing near them).
LOOSE = {
    "min_win_rate": 0.0,
    "min_sharpe_ratio": -10.0,
    "min_signals": 0,
    "min_total_return": -1.0,
    "require_improvement": False,
}
# No candidate passes these.
STRICT = {**LOOSE, "min_sharpe_ratio": 10.0, "min_signals": 1_000_000}

METRICS = {"win_rate": 0.52, "sharpe": 0.9, "num_trades": 12.0, "total_return": 0.08, "max_drawdown": 0.12}


def auto_agent(thresholds, **kwargs):
    agent = make_agent(**kwargs)
    approval.thresholds_set(agent, thresholds, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)
    return agent


def run(agent):
    iteration, created = learning.iteration_run_now(agent, trigger="manual")
    assert created and iteration.status == IterationStatus.SUCCEEDED, iteration.error
    return iteration


def refinements(iteration):
    return list(Refinement.objects.filter(iteration=iteration).order_by("id"))


def criteria(refinement):
    return {c["criterion"]: c for c in refinement.criteria_results}


# --- threshold validation ---------------------------------------------------------------------
def test_defaults_are_documented_and_valid():
    assert approval.DEFAULT_THRESHOLDS == {
        "min_win_rate": 0.4, "min_sharpe_ratio": 0.5, "min_signals": 5, "min_total_return": 0.0,
        "require_improvement": True, "max_drawdown": None,
    }
    assert approval.validate_thresholds(dict(approval.DEFAULT_THRESHOLDS)) == approval.DEFAULT_THRESHOLDS
    for name, value in approval.DEFAULT_THRESHOLDS.items():
        assert f"``{name}``" in approval.__doc__
        assert str(value).lower().replace("none", "null") in approval.__doc__


def test_full_replace_merges_over_defaults_and_cleans_types():
    clean = approval.validate_thresholds({**LOOSE, "min_signals": 7.0, "max_drawdown": 0.3})
    assert clean == {**LOOSE, "min_signals": 7, "max_drawdown": 0.3}
    assert isinstance(clean["min_signals"], int)
    assert approval.validate_thresholds(LOOSE)["max_drawdown"] is None  # optional: no limit
    assert approval.validate_thresholds({"min_win_rate": 1, "min_sharpe_ratio": -10, "min_signals": 0,
                                         "min_total_return": -1, "require_improvement": False,
                                         "max_drawdown": 1})["max_drawdown"] == 1.0  # inclusive bounds


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("min_win_rate", 1.2, "between 0 and 1"),
        ("min_win_rate", -0.1, "between 0 and 1"),
        ("min_win_rate", "0.5", "must be a number"),
        ("min_win_rate", True, "must be a number"),
        ("min_win_rate", None, "must be a number"),
        ("min_win_rate", math.nan, "must be a number"),
        ("min_sharpe_ratio", 11, "between -10 and 10"),
        ("min_sharpe_ratio", -math.inf, "must be a number"),
        ("min_sharpe_ratio", [1], "must be a number"),
        ("min_signals", -1, "non-negative integer"),
        ("min_signals", 2.5, "non-negative integer"),
        ("min_signals", False, "non-negative integer"),
        ("min_signals", 10**400, "non-negative integer"),
        ("min_signals", 2_000_000, "at most 1000000"),
        ("min_total_return", -1.5, ">= -1"),
        ("min_total_return", math.inf, "must be a number"),
        ("require_improvement", 1, "true or false"),
        ("require_improvement", "yes", "true or false"),
        ("max_drawdown", 0, "greater than 0 and at most 1"),
        ("max_drawdown", 1.01, "greater than 0 and at most 1"),
        ("max_drawdown", True, "greater than 0 and at most 1"),
    ],
)
def test_each_rule_alone_names_the_field(name, value, rule):
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds({**LOOSE, name: value})
    assert list(exc.value.errors) == [name]
    assert rule in exc.value.errors[name]


def test_unknown_keys_are_refused_and_the_known_ones_listed():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds({**LOOSE, "min_sharp_ratio": 1.0})
    assert list(exc.value.errors) == ["min_sharp_ratio"]
    assert "unknown threshold" in exc.value.errors["min_sharp_ratio"]
    assert "min_sharpe_ratio" in exc.value.errors["min_sharp_ratio"]


def test_full_replace_requires_each_seed_threshold_but_partial_does_not():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds({"min_win_rate": 0.5})
    assert set(exc.value.errors) == {"min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement"}
    assert approval.validate_thresholds({"min_win_rate": 0.5}, partial=True) == {
        **approval.DEFAULT_THRESHOLDS, "min_win_rate": 0.5
    }


def test_every_error_is_reported_at_once():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds(
            {"min_win_rate": 2, "min_sharpe_ratio": "high", "min_signals": -3, "min_total_return": -2,
             "require_improvement": "no", "max_drawdown": 5, "foo": 1}
        )
    assert set(exc.value.errors) == {
        "min_win_rate", "min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement",
        "max_drawdown", "foo",
    }


def test_a_non_object_is_refused():
    with pytest.raises(ValidationFailed) as exc:
        approval.validate_thresholds([0.4])
    assert "thresholds" in exc.value.errors


def test_bad_input_changes_nothing():
    agent = make_agent()
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    logged = ActivityLog.objects.filter(agent=agent).count()
    with pytest.raises(ValidationFailed):
        approval.thresholds_set(agent, {**LOOSE, "min_win_rate": 0.9, "min_signals": -1}, actor=agent.owner)
    with pytest.raises(ValidationFailed):
        approval.thresholds_set(agent, {"min_win_rate": 0.9, "bogus": 1}, actor=agent.owner, partial=True)
    agent.refresh_from_db()
    assert agent.approval_thresholds == {**LOOSE, "max_drawdown": None}
    assert ActivityLog.objects.filter(agent=agent).count() == logged


def test_thresholds_set_logs_the_change_and_partial_keeps_the_rest():
    agent = make_agent()
    assert approval.effective_thresholds(agent) == approval.DEFAULT_THRESHOLDS
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    approval.thresholds_set(agent, {"max_drawdown": 0.2}, actor=agent.owner, partial=True)
    agent.refresh_from_db()
    assert approval.effective_thresholds(agent) == {**LOOSE, "max_drawdown": 0.2}
    log = ActivityLog.objects.filter(agent=agent, event="approval_thresholds_set").first()
    assert log.actor == agent.owner
    assert log.details["changed"] == {"max_drawdown": {"from": None, "to": 0.2}}
    assert "max_drawdown no limit -> 0.2" in log.message


def test_a_bad_stored_threshold_falls_back_to_its_default():
    agent = make_agent()
    TradingAgent.objects.filter(pk=agent.pk).update(
        approval_thresholds={"min_win_rate": "high", "min_signals": 3, "foo": 1, "max_drawdown": 9}
    )
    agent.refresh_from_db()
    assert approval.effective_thresholds(agent) == {**approval.DEFAULT_THRESHOLDS, "min_signals": 3}


def test_enable_and_disable_are_logged_once():
    agent = make_agent()
    approval.auto_approve_enable(agent, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)
    assert TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    approval.auto_approve_disable(agent, actor=agent.owner)
    assert not TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    events = list(ActivityLog.objects.filter(agent=agent, event__startswith="auto_approve_")
                  .order_by("id").values_list("event", flat=True))
    assert events == ["auto_approve_enabled", "auto_approve_disabled"]


# --- judging ----------------------------------------------------------------------------------
def test_judge_reports_every_threshold_in_force():
    thresholds = {**approval.DEFAULT_THRESHOLDS, "max_drawdown": 0.2}
    results = approval.judge(METRICS, 0.93, thresholds, 0.81)
    assert results == [
        {"criterion": "min_win_rate", "required": 0.4, "actual": 0.52, "passed": True},
        {"criterion": "min_sharpe_ratio", "required": 0.5, "actual": 0.9, "passed": True},
        {"criterion": "min_signals", "required": 5, "actual": 12, "passed": True},
        {"criterion": "min_total_return", "required": 0.0, "actual": 0.08, "passed": True},
        {"criterion": "max_drawdown", "required": 0.2, "actual": 0.12, "passed": True},
        {"criterion": "require_improvement", "required": "> current score 0.81", "actual": 0.93, "passed": True},
    ]


def test_judge_leaves_out_thresholds_not_in_force():
    thresholds = {**approval.DEFAULT_THRESHOLDS, "require_improvement": False, "max_drawdown": None}
    names = [r["criterion"] for r in approval.judge(METRICS, 0.93, thresholds, 0.81)]
    assert names == ["min_win_rate", "min_sharpe_ratio", "min_signals", "min_total_return"]


@pytest.mark.parametrize(
    ("criterion", "metric", "value", "passed"),
    [
        ("min_win_rate", "win_rate", 0.39, False),
        ("min_win_rate", "win_rate", 0.4, True),  # minimums are inclusive
        ("min_sharpe_ratio", "sharpe", 0.49, False),
        ("min_sharpe_ratio", "sharpe", 0.5, True),
        ("min_signals", "num_trades", 4.0, False),
        ("min_signals", "num_trades", 5.0, True),
        ("min_total_return", "total_return", -0.001, False),
        ("min_total_return", "total_return", 0.0, True),
        ("max_drawdown", "max_drawdown", 0.21, False),
        ("max_drawdown", "max_drawdown", 0.2, True),  # the limit is inclusive
    ],
)
def test_judge_each_criterion_at_its_boundary(criterion, metric, value, passed):
    thresholds = {**approval.DEFAULT_THRESHOLDS, "max_drawdown": 0.2}
    results = {r["criterion"]: r for r in approval.judge({**METRICS, metric: value}, 0.93, thresholds, 0.81)}
    assert results[criterion]["passed"] is passed
    assert results[criterion]["actual"] == value
    assert all(r["passed"] for name, r in results.items() if name != criterion)


@pytest.mark.parametrize(("score", "current", "passed"), [(0.82, 0.81, True), (0.81, 0.81, False),
                                                          (-0.5, -0.4, False), (0.5, None, False),
                                                          (None, 0.5, False)])
def test_improvement_is_strict(score, current, passed):
    result = approval.judge(METRICS, score, approval.DEFAULT_THRESHOLDS, current)[-1]
    assert result["criterion"] == "require_improvement" and result["passed"] is passed


@pytest.mark.parametrize("bad", [None, "0.5", True, math.nan, math.inf])
def test_a_missing_or_odd_metric_fails_its_criterion_without_raising(bad):
    metrics = {**METRICS, "win_rate": bad}
    result = approval.judge(metrics, 0.93, approval.DEFAULT_THRESHOLDS, 0.81)[0]
    assert result == {"criterion": "min_win_rate", "required": 0.4, "actual": None, "passed": False}
    assert not any(r["passed"] for r in approval.judge(None, None, approval.DEFAULT_THRESHOLDS, 0.81))


# --- auto-approval after real iterations ------------------------------------------------------
def test_loose_thresholds_apply_the_best_candidate_and_supersede_the_rest():
    agent = auto_agent(LOOSE, candidates_per_iteration=5)
    iteration = run(agent)

    refs = refinements(iteration)
    best = max(refs, key=lambda r: (r.score, -r.pk))
    agent.refresh_from_db()
    version = agent.current_version
    assert version.number == 2 and version.origin == VersionOrigin.REFINEMENT
    assert version.params == best.proposed_params and version.created_by is None
    assert best.status == RefinementStatus.APPLIED and best.produced_version_id == version.pk
    assert best.decided_automatically and best.decided_by is None
    assert best.decision_reason.startswith("auto-approved: passed all 4 criteria")
    others = [r for r in refs if r.pk != best.pk]
    assert {r.status for r in others} == {RefinementStatus.SUPERSEDED}
    for r in refs:
        assert [c["criterion"] for c in r.criteria_results] == list(LOOSE)[:4]
        assert all(c["passed"] for c in r.criteria_results)
        assert r.decided_at is not None and r.decided_automatically
    assert all(f"superseded by refinement {best.pk}" in r.decision_reason for r in others)

    log = ActivityLog.objects.filter(agent=agent, actor_label="auto-approval")
    assert log.get(event="refinement_approved").details["criteria"] == best.criteria_results
    applied = log.get(event="refinement_applied")
    assert applied.details["refinement"] == best.pk and applied.actor is None
    assert log.filter(event="refinement_superseded").count() == len(others)
    superseded = log.filter(event="refinement_superseded").first()
    stored = Refinement.objects.get(pk=superseded.details["refinement"]).criteria_results
    assert superseded.details["criteria"] == stored
    summary = log.get(event="auto_approval")
    assert summary.details["approved"] == best.pk and summary.details["version"] == 2
    assert summary.details["superseded"] == len(others) and summary.details["rejected"] == 0

    # The applied version is what the next iteration evaluates: same windows, same score.
    second = run(agent)
    assert second.version_id == version.pk
    assert second.score == pytest.approx(best.score)


def test_strict_thresholds_reject_everything_with_the_failed_criteria():
    agent = auto_agent(STRICT)
    iteration = run(agent)

    assert StrategyVersion.objects.filter(agent=agent).count() == 1
    refs = refinements(iteration)
    assert refs and {r.status for r in refs} == {RefinementStatus.REJECTED}
    for r in refs:
        results = criteria(r)
        assert not results["min_sharpe_ratio"]["passed"] and not results["min_signals"]["passed"]
        assert results["min_win_rate"]["passed"]
        assert r.decision_reason.startswith("auto-rejected: failed min_sharpe_ratio ")
        assert "min_signals" in r.decision_reason and "min_win_rate" not in r.decision_reason
        assert r.decided_automatically
    rejected = ActivityLog.objects.filter(agent=agent, event="refinement_rejected", actor_label="auto-approval")
    assert rejected.count() == len(refs)
    assert all(not all(c["passed"] for c in log.details["criteria"]) for log in rejected)
    summary = ActivityLog.objects.get(agent=agent, event="auto_approval")
    assert "none of" in summary.message and summary.details["approved"] is None


def test_mixed_outcome_on_a_real_iteration():
    """Thresholds set from the candidates' own scores: the top half passes, the rest fails."""
    agent = make_agent(candidates_per_iteration=6)
    iteration = run(agent)  # auto-approval off: the candidates wait
    refs = refinements(iteration)
    assert all(r.status == RefinementStatus.PENDING and r.criteria_results == [] for r in refs)
    sharpes = sorted({r.validation_metrics["sharpe"] for r in refs})
    assert len(sharpes) >= 3, "the refiner should propose distinct candidates"
    cut = sharpes[len(sharpes) // 2]
    approval.thresholds_set(agent, {**LOOSE, "min_sharpe_ratio": cut}, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)

    summary = approval.auto_approve_iteration(iteration)

    refs = refinements(iteration)
    passing = [r for r in refs if r.validation_metrics["sharpe"] >= cut]
    failing = [r for r in refs if r.validation_metrics["sharpe"] < cut]
    best = max(passing, key=lambda r: (r.score, -r.pk))
    assert summary == {"enabled": True, "skipped": None, "approved": best.pk, "version": 2, "judged": len(refs),
                       "passed": len(passing), "superseded": len(passing) - 1, "rejected": len(failing)}
    assert best.status == RefinementStatus.APPLIED
    assert {r.status for r in passing if r.pk != best.pk} <= {RefinementStatus.SUPERSEDED}
    assert failing and {r.status for r in failing} == {RefinementStatus.REJECTED}
    assert all("min_sharpe_ratio" in r.decision_reason for r in failing)
    # Nothing pending is left, so running it again changes nothing.
    assert approval.auto_approve_iteration(iteration)["judged"] == 0


def test_require_improvement_across_an_iteration_history():
    agent = auto_agent({**LOOSE, "require_improvement": True}, candidates_per_iteration=4)
    blocked_only_by_improvement = 0
    for _ in range(3):
        iteration = run(agent)
        refs = refinements(iteration)
        beating = [r for r in refs if r.score > iteration.score]
        for r in refs:
            results = criteria(r)
            assert results["require_improvement"]["required"] == f"> current score {iteration.score:.4g}"
            assert results["require_improvement"]["passed"] is (r.score > iteration.score)
            if r not in beating:
                assert r.status == RefinementStatus.REJECTED
                assert "require_improvement" in r.decision_reason
                if all(c["passed"] for name, c in results.items() if name != "require_improvement"):
                    blocked_only_by_improvement += 1
        if beating:
            best = max(beating, key=lambda r: (r.score, -r.pk))
            assert best.status == RefinementStatus.APPLIED
            agent.refresh_from_db()
            assert agent.current_version.params == best.proposed_params
        else:
            assert not any(r.status == RefinementStatus.APPLIED for r in refs)
    assert blocked_only_by_improvement > 0
    # Each applied version beat the score of the version it replaced.
    for applied in Refinement.objects.filter(agent=agent, status=RefinementStatus.APPLIED):
        assert applied.score > applied.iteration.score


@pytest.mark.parametrize(
    ("status", "reason"),
    [(AgentStatus.LIVE_TRADING, approval.LIVE_SKIP_REASON), (AgentStatus.PAPER_TRADING, approval.PAPER_SKIP_REASON)],
)
def test_trading_agents_are_judged_but_never_changed(status, reason):
    agent = auto_agent(LOOSE)
    TradingAgent.objects.filter(pk=agent.pk).update(status=status)
    agent.refresh_from_db()
    iteration = run(agent)

    agent.refresh_from_db()
    assert agent.current_version.number == 1
    assert StrategyVersion.objects.filter(agent=agent).count() == 1
    refs = refinements(iteration)
    assert {r.status for r in refs} == {RefinementStatus.PENDING}
    assert all(r.criteria_results and all(c["passed"] for c in r.criteria_results) for r in refs)
    assert all(reason in r.decision_reason and not r.decided_automatically for r in refs)
    skipped = ActivityLog.objects.get(agent=agent, event="auto_approval_skipped")
    assert skipped.message == reason and skipped.actor_label == "auto-approval"
    assert {c["refinement"] for c in skipped.details["candidates"]} == {r.pk for r in refs}
    assert not ActivityLog.objects.filter(agent=agent, event__in=["refinement_applied", "refinement_approved"]).exists()
    assert reason == "auto-approval skipped: live trading agents change only by a person" or status == "paper_trading"


def test_disabled_auto_approval_leaves_candidates_untouched():
    agent = make_agent()
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    iteration = run(agent)
    assert all(r.status == RefinementStatus.PENDING and not r.criteria_results for r in refinements(iteration))
    assert not ActivityLog.objects.filter(agent=agent, actor_label="auto-approval").exists()
    assert approval.auto_approve_iteration(iteration) == approval._summary(enabled=False)


def test_a_persons_approval_waiting_to_be_applied_is_not_swept_up():
    agent = make_agent()
    first = run(agent)
    waiting = refinements(first)[0]
    decisions.refinement_approve(waiting, actor=agent.owner, reason="I like it")
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)

    second = run(agent)

    assert Refinement.objects.get(pk=waiting.pk).status == RefinementStatus.APPROVED
    assert {r.status for r in refinements(second)} == {RefinementStatus.PENDING}
    skipped = ActivityLog.objects.get(agent=agent, event="auto_approval_skipped")
    assert f"refinement(s) {waiting.pk} approved by a person" in skipped.message


def test_an_old_iteration_is_not_applied_over_a_newer_version():
    agent = make_agent()
    old = run(agent)
    decisions.refinement_approve(refinements(old)[0], actor=agent.owner)
    decisions.refinements_apply(agent, actor=agent.owner)
    approval.thresholds_set(agent, LOOSE, actor=agent.owner)
    approval.auto_approve_enable(agent, actor=agent.owner)

    summary = approval.auto_approve_iteration(old)

    assert "current version changed" in summary["skipped"]
    assert StrategyVersion.objects.filter(agent=agent).count() == 2


def test_an_error_inside_approval_does_not_fail_the_iteration(monkeypatch):
    agent = auto_agent(LOOSE)

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(decisions, "refinements_apply", explode)
    iteration = run(agent)

    # The approval's own writes were rolled back; the candidates wait for a person.
    assert {r.status for r in refinements(iteration)} == {RefinementStatus.PENDING}
    assert not ActivityLog.objects.filter(agent=agent, event="refinement_approved").exists()
    failed = ActivityLog.objects.get(agent=agent, event="auto_approval_failed")
    assert "disk on fire" in failed.message
    assert StrategyVersion.objects.filter(agent=agent).count() == 1


def test_bad_stored_thresholds_do_not_break_the_iteration():
    agent = make_agent()
    TradingAgent.objects.filter(pk=agent.pk).update(
        auto_approve_enabled=True, approval_thresholds={"min_sharpe_ratio": "nan", "min_signals": 10**6}
    )
    agent.refresh_from_db()
    iteration = run(agent)
    refs = refinements(iteration)
    assert all(criteria(r)["min_sharpe_ratio"]["required"] == 0.5 for r in refs)  # the default
    assert {r.status for r in refs} == {RefinementStatus.REJECTED}


# --- API --------------------------------------------------------------------------------------
@pytest.fixture
def user():
    return UserFactory(username="alice")


@pytest.fixture
def client(user):
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture
def agent(user):
    return make_agent(owner=user, instrument=random_walk_bars(InstrumentFactory(symbol="SYNA")))


def url(agent, path):
    return f"/api/learning-agents/{agent.pk}/{path}"


def test_api_get_shows_thresholds_in_force_and_defaults(client, agent):
    resp = client.get(url(agent, "approval-thresholds"))
    assert resp.status_code == 200
    assert resp.data == {
        "auto_approve_enabled": False,
        "thresholds": approval.DEFAULT_THRESHOLDS,
        "defaults": approval.DEFAULT_THRESHOLDS,
        "applies_automatically": False,
        "note": "",
    }


def test_api_enable_and_disable(client, agent, user):
    for suffix in ("", "/"):
        resp = client.post(url(agent, "auto-approve/enable") + suffix)
        assert resp.status_code == 200
        assert resp.data["auto_approve_enabled"] is True and resp.data["applies_automatically"] is True
    assert TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    assert client.get(f"/api/learning-agents/{agent.pk}").data["auto_approve_enabled"] is True
    resp = client.post(url(agent, "auto-approve/disable/"))
    assert resp.status_code == 200 and resp.data["auto_approve_enabled"] is False
    assert not TradingAgent.objects.get(pk=agent.pk).auto_approve_enabled
    assert ActivityLog.objects.filter(agent=agent, event="auto_approve_enabled", actor=user).count() == 1


def test_api_live_agent_says_why_nothing_applies(client, agent):
    TradingAgent.objects.filter(pk=agent.pk).update(status=AgentStatus.LIVE_TRADING)
    resp = client.post(url(agent, "auto-approve/enable"))
    assert resp.status_code == 200
    assert resp.data["auto_approve_enabled"] is True and resp.data["applies_automatically"] is False
    assert resp.data["note"] == approval.LIVE_SKIP_REASON


def test_api_put_replaces_the_thresholds(client, agent):
    body = {**LOOSE, "min_signals": 3, "max_drawdown": 0.25}
    resp = client.put(url(agent, "approval-thresholds"), body, format="json")
    assert resp.status_code == 200, resp.data
    assert resp.data["thresholds"] == body
    assert resp.data["defaults"] == approval.DEFAULT_THRESHOLDS
    agent.refresh_from_db()
    assert agent.approval_thresholds == body
    # A full replace: what is not sent (max_drawdown) goes back to its default.
    resp = client.put(url(agent, "approval-thresholds/"), LOOSE, format="json")
    assert resp.status_code == 200 and resp.data["thresholds"]["max_drawdown"] is None


def test_api_patch_changes_only_what_is_sent(client, agent):
    resp = client.patch(url(agent, "approval-thresholds"), {"min_win_rate": 0.55}, format="json")
    assert resp.status_code == 200
    assert resp.data["thresholds"] == {**approval.DEFAULT_THRESHOLDS, "min_win_rate": 0.55}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**LOOSE, "min_win_rate": 1.5}, {"min_win_rate"}),
        ({**LOOSE, "min_signals": 2.5}, {"min_signals"}),
        ({**LOOSE, "require_improvement": "true"}, {"require_improvement"}),
        ({**LOOSE, "min_sharpe_ratio": True}, {"min_sharpe_ratio"}),
        ({**LOOSE, "max_drawdown": 0}, {"max_drawdown"}),
        ({**LOOSE, "colour": "blue"}, {"colour"}),
        ({"min_win_rate": 0.5}, {"min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement"}),
        ({**LOOSE, "min_win_rate": -1, "min_total_return": -3, "x": 1}, {"min_win_rate", "min_total_return", "x"}),
    ],
)
def test_api_put_bad_thresholds_is_a_400_naming_each_field(client, agent, body, fields):
    resp = client.put(url(agent, "approval-thresholds"), body, format="json")
    assert resp.status_code == 400
    assert set(resp.data) == fields
    assert all(isinstance(resp.data[f], list) and resp.data[f][0] for f in fields)
    agent.refresh_from_db()
    assert agent.approval_thresholds == {}


def test_api_put_a_list_is_a_400(client, agent):
    resp = client.put(url(agent, "approval-thresholds"), [1, 2], format="json")
    assert resp.status_code == 400 and "thresholds" in resp.data


def test_api_thresholds_take_json_only(client, agent):
    # A form cannot tell a boolean or a number from a string: refused rather than guessed.
    resp = client.put(url(agent, "approval-thresholds"), "min_win_rate=0.5",
                      content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415
    agent.refresh_from_db()
    assert agent.approval_thresholds == {}


def test_api_another_owners_agent_is_a_404(client):
    theirs = make_agent(owner=UserFactory(username="bob"))
    assert client.get(url(theirs, "approval-thresholds")).status_code == 404
    assert client.put(url(theirs, "approval-thresholds"), LOOSE, format="json").status_code == 404
    assert client.patch(url(theirs, "approval-thresholds"), {"min_win_rate": 0.1}, format="json").status_code == 404
    assert client.post(url(theirs, "auto-approve/enable")).status_code == 404
    assert client.post(url(theirs, "auto-approve/disable")).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.auto_approve_enabled and theirs.approval_thresholds == {}


def test_api_end_to_end_an_iteration_applies_by_itself(client, agent):
    client.put(url(agent, "approval-thresholds"), LOOSE, format="json")
    client.post(url(agent, "auto-approve/enable"))
    resp = client.post(url(agent, "iterations?wait=true"))
    assert resp.status_code == 200 and resp.data["status"] == "succeeded"
    versions = client.get(url(agent, "versions")).data["results"]
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["origin"] == "refinement"
    applied = client.get(url(agent, "refinements?status=applied")).data["results"]
    assert len(applied) == 1 and applied[0]["decided_automatically"] and applied[0]["criteria_results"]
    labels = {a["actor_label"] for a in client.get(url(agent, "activity")).data["results"]}
    assert "auto-approval" in labels


def test_api_schema_documents_the_endpoints(client):
    resp = client.get("/api/schema/")
    assert resp.status_code == 200
    for path in (b"/api/learning-agents/{id}/auto-approve/enable", b"/api/learning-agents/{id}/auto-approve/disable",
                 b"/api/learning-agents/{id}/approval-thresholds"):
        assert path in resp.content
    assert b"min_sharpe_ratio" in resp.content
