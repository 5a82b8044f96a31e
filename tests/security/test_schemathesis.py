"""schemathesis against the lab's own OpenAPI schema, as a logged-in owner, over every operation.

The schema is the one the app serves (/api/schema/), loaded through the WSGI app; every documented
operation is fuzzed with schema-valid and schema-invalid requests, its path ids either the owner's
real agent, iteration, refinement, version, alert and channel (so the handlers run, not only the
404s) or generated ones. Each request runs in a savepoint rolled back afterwards, so every example
starts from the same data and nothing queued ever reaches a broker. Checks: no 5xx, and every
response conforms to the schema (documented status codes: body and content type).

Bounded for the suite: LAB_FUZZ_EXAMPLES examples per generation mode and operation (default 5),
seeded by LAB_FUZZ_SEED (fixed by default, so a run is reproducible). Run it longer with e.g.
    LAB_FUZZ_EXAMPLES=200 LAB_FUZZ_SEED=$RANDOM .venv/bin/python -m pytest tests/security/test_schemathesis.py -s
"""

import logging
import os
import socket
import time
from collections import Counter

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from agents.market.models import BarImport
from agents.models import Refinement
from agents.services import learning
from alerts.models import AgentAlert, AlertType, Delivery, NotificationChannel, Severity
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tournaments.services.tournaments import tournament_create

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = int(os.environ.get("LAB_FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("LAB_FUZZ_SEED", "20251129"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def app(monkeypatch, settings):
    """The real WSGI app, run in this thread on the test's database connection."""
    # The WSGI handler closes "old" connections around each request; inside the test's transaction
    # that would close it (Django's test client disconnects these the same way).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # No throttling while fuzzing (its own tests are in test_access.py), no real network, no mail.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None, "start_work": None})
    cache.clear()
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host in ("localhost", "127.0.0.1", "::1"):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "no network while fuzzing")

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    application = get_wsgi_application()  # (re)configures logging: quieten after it
    # Thousands of expected 4xx would drown the output; a 500 is still logged (ERROR).
    request_log = logging.getLogger("django.request")
    level = request_log.level
    request_log.setLevel(logging.ERROR)
    yield application
    request_log.setLevel(level)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    cache.clear()


@pytest.fixture
def owner_world():
    owner = UserFactory(username="fuzzer")
    instrument = random_walk_bars(InstrumentFactory(symbol="FUZZ"), n=300)
    agent = make_agent(owner=owner, instrument=instrument, name="fuzzed", candidates_per_iteration=2)
    iteration, _ = learning.iteration_run_now(agent, trigger="api")
    agent.refresh_from_db()
    alert = AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.WARNING,
                                      message="fuzz")
    channel = NotificationChannel.objects.create(owner=owner, name="log", kind="log", min_severity=Severity.INFO)
    Delivery.objects.create(alert=alert, channel=channel)
    refinement = Refinement.objects.filter(agent=agent).order_by("id").first()
    rival = make_agent(owner=owner, instrument=instrument, name="fuzzed rival")
    tournament = tournament_create(owner, name="fuzz cup", agent_ids=[agent.pk, rival.pk])
    ids = {
        "agent": str(agent.pk), "iteration_id": str(iteration.pk), "refinement_id": str(refinement.pk),
        "version_id": str(agent.current_version_id), "alert_id": str(alert.pk), "channel": str(channel.pk),
        "instrument": str(instrument.pk), "symbol": instrument.symbol, "tournament": str(tournament.pk),
        "import_id": str(BarImport.objects.create(symbol=instrument.symbol, requested_by=owner, path="/none").pk),
    }
    return {"token": Token.objects.create(user=owner).key, "ids": ids}


def real_path_parameters(operation, ids):
    """The owner's objects for each path parameter of the operation."""
    values = {}
    for parameter in operation.path_parameters:
        name = parameter.name
        if name == "agent_id" and operation.path.startswith("/api/tournaments/"):
            values[name] = ids["agent"]  # an entrant of the fuzz cup
        elif name in ("id", "agent_id"):
            if operation.path.startswith("/api/notification-channels/"):
                values[name] = ids["channel"]
            elif operation.path.startswith("/api/instruments/"):
                values[name] = ids["instrument"]
            elif operation.path.startswith("/api/tournaments/"):
                values[name] = ids["tournament"]
            else:
                values[name] = ids["agent"]
        elif name == "decision":
            values[name] = "approve"
        elif name in ids:
            values[name] = ids[name]
        else:
            raise AssertionError(f"{operation.label}: unknown path parameter {name}; add it to the fuzz test's ids")
    return values


def test_fuzz_every_operation_no_server_error_and_schema_conformant(app, owner_world):
    started = time.monotonic()
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)
    results = list(schema.get_all_operations())
    broken = [r.err() for r in results if not hasattr(r, "ok")]
    assert not broken, f"operations schemathesis could not load: {broken}"
    operations = [r.ok() for r in results]
    assert len(operations) >= 50, [op.label for op in operations]

    headers = {"Authorization": f"Token {owner_world['token']}"}
    failures, statuses = {}, Counter()
    examples = 0

    for operation in operations:
        fixed = real_path_parameters(operation, owner_world["ids"])
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
            operation.as_strategy(GenerationMode.POSITIVE),
        )

        @seed(SEED)
        @hypothesis_settings(
            max_examples=EXAMPLES * 3, deadline=None, database=None, derandomize=False,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )
        @given(case=strategy)
        def run(case):
            nonlocal examples
            with transaction.atomic():
                try:
                    response = case.call(app=app, headers=headers)
                    examples += 1
                    statuses[response.status_code] += 1
                    case.validate_response(response, checks=CHECKS, headers=headers)
                finally:
                    transaction.set_rollback(True)

        try:
            run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # one operation's failure must not hide the others'
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:2000]}"

    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {len(operations)} operations, {examples} requests, statuses {dict(statuses)}, "
          f"{len(failures)} failing operations, {elapsed:.1f}s (LAB_FUZZ_EXAMPLES={EXAMPLES}, seed {SEED})")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert not [code for code in statuses if code >= 500]
    # The fixed ids reach the handlers: a good share of requests succeed (any 2xx: the POST
    # operations added by tournaments and challengers answer 201/202/204), not only 404s. A third
    # of the examples draw random ids, and negative ones mostly 404 or 400, so a quarter is the bar.
    answered = sum(count for code, count in statuses.items() if 200 <= code < 300)
    assert answered > examples / 4, dict(statuses)
