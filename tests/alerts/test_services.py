"""alert_raise's deduplication and notification contract, acknowledge and delete."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from agents.models import ActivityLog
from alerts import services
from alerts.models import AgentAlert, AlertType, Severity
from core.errors import ValidationFailed
from tests.factories import InstrumentFactory, UserFactory, make_agent

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def agent():
    return make_agent(instrument=InstrumentFactory())


def raise_error(agent, severity=Severity.WARNING, message="boom", fingerprint="iteration_failed", **kwargs):
    return services.alert_raise(agent, alert_type=AlertType.ERROR, severity=severity, message=message,
                                fingerprint=fingerprint, **kwargs)


def test_new_alert_is_created_and_notified_after_commit(agent, notified, clock, django_capture_on_commit_callbacks):
    clock(T0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert, created = raise_error(agent, details={"iteration": 3})
    assert created and notified == []  # nothing is sent inside the transaction
    for callback in callbacks:
        callback()
    assert notified == [alert.pk]
    alert.refresh_from_db()
    assert (alert.occurrence_count, alert.severity, alert.details) == (1, Severity.WARNING, {"iteration": 3})
    assert alert.last_seen_at == alert.created_at == alert.last_notified_at == T0
    assert not alert.acknowledged


def test_repeat_within_the_interval_updates_the_open_alert_without_notifying(
    agent, notified, clock, settings, django_capture_on_commit_callbacks
):
    settings.LAB_ALERT_REPEAT_INTERVAL_MINUTES = 60
    clock(T0)
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = raise_error(agent, message="first", details={"n": 1})
    clock(T0 + dt.timedelta(minutes=59))
    with django_capture_on_commit_callbacks(execute=True):
        again, created = raise_error(agent, message="second", details={"n": 2})

    assert not created and again.pk == first.pk
    assert AgentAlert.objects.count() == 1
    assert again.occurrence_count == 2
    assert again.last_seen_at == T0 + dt.timedelta(minutes=59)
    assert again.created_at == T0
    assert (again.message, again.details) == ("second", {"n": 2})  # the latest
    assert again.last_notified_at == T0
    assert notified == [first.pk]  # not again


def test_repeat_after_the_interval_notifies_again(agent, notified, clock, settings,
                                                   django_capture_on_commit_callbacks):
    settings.LAB_ALERT_REPEAT_INTERVAL_MINUTES = 60
    clock(T0)
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = raise_error(agent)
    clock(T0 + dt.timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        raise_error(agent)
    clock(T0 + dt.timedelta(minutes=60))
    with django_capture_on_commit_callbacks(execute=True):
        again, created = raise_error(agent)
    assert not created
    assert again.occurrence_count == 3
    assert again.last_notified_at == T0 + dt.timedelta(minutes=60)
    assert notified == [first.pk, first.pk]
    # ...and the interval restarts from that notification.
    clock(T0 + dt.timedelta(minutes=119))
    with django_capture_on_commit_callbacks(execute=True):
        raise_error(agent)
    assert len(notified) == 2


def test_severity_only_escalates_and_an_escalation_notifies_at_once(agent, notified, clock,
                                                                     django_capture_on_commit_callbacks):
    clock(T0)
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = raise_error(agent, Severity.WARNING)
        lower, _ = raise_error(agent, Severity.INFO)
    assert lower.severity == Severity.WARNING and notified == [alert.pk]
    clock(T0 + dt.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        higher, _ = raise_error(agent, Severity.CRITICAL)
    assert higher.severity == Severity.CRITICAL
    assert higher.last_notified_at == T0 + dt.timedelta(minutes=5)
    assert notified == [alert.pk, alert.pk]


def test_acknowledged_alert_does_not_absorb_repeats(agent, notified, django_capture_on_commit_callbacks):
    user = agent.owner
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = raise_error(agent)
    acknowledged = services.alert_acknowledge(first, user=user)
    assert acknowledged.acknowledged and acknowledged.acknowledged_by == user and acknowledged.acknowledged_at
    with django_capture_on_commit_callbacks(execute=True):
        second, created = raise_error(agent)
    assert created and second.pk != first.pk
    assert AgentAlert.objects.filter(acknowledged=False).get() == second
    assert notified == [first.pk, second.pk]
    assert ActivityLog.objects.filter(agent=agent, event="alert_acknowledged", actor=user).count() == 1


def test_acknowledging_twice_changes_nothing(agent, notified):
    alert, _ = raise_error(agent)
    first = services.alert_acknowledge(alert, user=agent.owner)
    other = UserFactory()
    second = services.alert_acknowledge(alert, user=other)
    assert second.acknowledged_by == agent.owner and second.acknowledged_at == first.acknowledged_at
    assert ActivityLog.objects.filter(event="alert_acknowledged").count() == 1


def test_identity_is_agent_type_and_fingerprint(agent, notified):
    other_agent = make_agent(owner=agent.owner, instrument=agent.instrument)
    raise_error(agent, fingerprint="a")
    raise_error(agent, fingerprint="b")
    raise_error(other_agent, fingerprint="a")
    services.alert_raise(agent, alert_type=AlertType.MILESTONE, severity=Severity.INFO, message="m", fingerprint="a")
    raise_error(agent, fingerprint="a")
    assert AgentAlert.objects.count() == 4
    assert AgentAlert.objects.get(agent=agent, alert_type=AlertType.ERROR, fingerprint="a").occurrence_count == 2


def test_a_lost_insert_race_updates_the_winners_row(agent, notified, monkeypatch):
    winner, _ = raise_error(agent, message="winner")
    real = services._open_alerts
    calls = []

    def blind_first_time(*args):
        # The first look happens "before the other transaction committed": it sees nothing.
        calls.append(args)
        qs = real(*args)
        return qs.none() if len(calls) == 1 else qs

    monkeypatch.setattr(services, "_open_alerts", blind_first_time)
    alert, created = raise_error(agent, message="loser")
    assert not created and alert.pk == winner.pk
    assert alert.occurrence_count == 2 and alert.message == "loser"
    assert AgentAlert.objects.count() == 1 and len(calls) == 2


def test_the_database_refuses_a_second_open_alert_with_the_same_identity(agent):
    AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.INFO, message="x",
                              fingerprint="f")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.INFO, message="y",
                                  fingerprint="f")
    AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.INFO, message="z",
                              fingerprint="f", acknowledged=True)  # closed ones may pile up


def test_system_alerts_have_no_agent_and_deduplicate_too(notified):
    first, created = services.system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL,
                                                 message="beat is down",
                                                 fingerprint="beat")
    again, created_again = services.system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL,
                                                       message="beat is still down",
                                                       fingerprint="beat")
    assert created and not created_again and again.pk == first.pk
    assert again.agent is None and again.occurrence_count == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alert_type": "NOPE"}, "alert_type"),
        ({"severity": "LOUD"}, "severity"),
        ({"message": "  "}, "message"),
        ({"fingerprint": "x" * 201}, "fingerprint"),
    ],
)
def test_bad_alert_names_the_field_and_writes_nothing(agent, kwargs, field):
    values = {"alert_type": AlertType.ERROR, "severity": Severity.WARNING, "message": "m", "fingerprint": "", **kwargs}
    with pytest.raises(ValidationFailed) as exc:
        services.alert_raise(agent, alert_type=values["alert_type"], severity=values["severity"],
                             message=values["message"],
                             fingerprint=values["fingerprint"])
    assert field in exc.value.errors
    assert not AgentAlert.objects.exists()


def test_a_failing_notification_never_reaches_the_caller(agent, monkeypatch, django_capture_on_commit_callbacks):
    def broken(alert_id):
        raise RuntimeError("smtp is down")

    monkeypatch.setattr("alerts.notify.alert_notify", broken)
    with django_capture_on_commit_callbacks(execute=True):
        alert, created = raise_error(agent)
    assert created and AgentAlert.objects.filter(pk=alert.pk).exists()


def test_bulk_acknowledge_touches_only_open_alerts_of_the_queryset(agent, notified):
    mine = [raise_error(agent, fingerprint=f"f{i}")[0] for i in range(3)]
    services.alert_acknowledge(mine[0], user=agent.owner)
    stranger = make_agent(instrument=agent.instrument)
    theirs, _ = raise_error(stranger)

    count = services.alerts_acknowledge(AgentAlert.objects.filter(agent__owner=agent.owner), user=agent.owner)
    assert count == 2
    assert not AgentAlert.objects.filter(agent=agent, acknowledged=False).exists()
    theirs.refresh_from_db()
    assert not theirs.acknowledged
    log = ActivityLog.objects.filter(agent=agent, event="alert_acknowledged").order_by("id").last()
    assert log.details == {"count": 2}


def test_delete_removes_the_alert_and_logs_it(agent, notified):
    alert, _ = raise_error(agent)
    services.alert_delete(alert, user=agent.owner)
    assert not AgentAlert.objects.exists()
    assert ActivityLog.objects.filter(agent=agent, event="alert_deleted").count() == 1
    others = [raise_error(agent, fingerprint=f"f{i}")[0] for i in range(2)]
    assert services.alerts_delete(AgentAlert.objects.filter(pk__in=[a.pk for a in others]), user=agent.owner) == 2
    assert not AgentAlert.objects.exists()


def test_graduation_ready_is_one_alert_per_step(agent, notified):
    first, created = services.graduation_ready_raise(agent, details={"target": "paper_trading", "sharpe": 1.4})
    again, created_again = services.graduation_ready_raise(agent, details={"target": "paper_trading", "sharpe": 1.5})
    assert created and not created_again and again.occurrence_count == 2
    assert (first.alert_type, first.severity, first.fingerprint) == (
        AlertType.GRADUATION_READY, Severity.INFO, "graduation:learning"
    )
    assert "paper_trading" in first.message
