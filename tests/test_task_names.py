"""Services send tasks by name (config.task_messages): every name they use must be a task that a
worker registers, and the beat's names too; a renamed task must not leave a sender behind."""

import pytest
from celery import Task, current_app
from django.conf import settings

import alerts.heartbeat
import graduation.tasks
from agents import task_names as agent_task_names
from agents import tasks as agent_tasks
from alerts import task_names as alert_task_names
from alerts import tasks as alert_tasks
from tournaments import task_names as tournament_task_names
from tournaments import tasks as tournament_tasks


def declared(module):
    return {value for name, value in vars(module).items() if name.isupper()}


def registered_in(module):
    return {obj.name for obj in vars(module).values() if isinstance(obj, Task)}


def test_every_agents_task_is_registered_under_its_declared_name():
    assert declared(agent_task_names) == registered_in(agent_tasks)


def test_every_tournaments_task_is_registered_under_its_declared_name():
    assert declared(tournament_task_names) == registered_in(tournament_tasks)


def test_the_alerts_names_sent_by_name_are_alerts_tasks():
    assert declared(alert_task_names) and declared(alert_task_names) <= registered_in(alert_tasks)


@pytest.mark.parametrize("name", sorted(
    {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} | set(settings.CELERY_TASK_ROUTES)
))
def test_the_beat_schedule_and_the_routes_name_registered_tasks(name):
    assert graduation.tasks and alerts.heartbeat  # imported: their tasks are registered
    assert name in current_app.tasks


def test_a_message_sent_by_name_is_routed_like_delay():
    route = current_app.amqp.router.route({}, agent_task_names.RUN_ITERATION, (), {})
    assert route["queue"].name == "iterations"
    assert current_app.amqp.router.route({}, alert_task_names.DELIVER, (), {})["queue"].name == "default"
