"""No secret reaches a log line or an activity entry: the Claude refiner against an API that
echoes the key, and webhook deliveries signed with a channel secret. Each is checked on the
raw records (the code never logs it) and on the lab's JSON lines and pytest's caplog."""

import logging

import pytest

from agents.models import ActivityLog, IterationStatus
from agents.services import learning
from alerts.models import Delivery, DeliveryStatus
from alerts.transports.webhook import sign
from tests.alerts import helpers as hooks
from tests.factories import make_agent
from tests.fake_anthropic import FakeAnthropic, api_error

pytestmark = pytest.mark.django_db

API_KEY = "sk-ant-api03-observability-secret-0123456789abcdef"


def assert_absent(secret, *texts):
    for text in texts:
        assert secret not in text


def test_the_claude_key_echoed_by_a_401_is_never_logged(settings, caplog, raw_logs, json_logs):
    caplog.set_level(logging.DEBUG)
    settings.ANTHROPIC_API_KEY = API_KEY
    settings.ANTHROPIC_MAX_RETRIES = 1
    settings.ANTHROPIC_TIMEOUT_SECONDS = 5
    reply = api_error(401, "authentication_error", f"invalid x-api-key: {API_KEY} (key {API_KEY[-12:]})")
    with FakeAnthropic(reply) as fake:
        settings.ANTHROPIC_BASE_URL = fake.url
        agent = make_agent(refiner="claude")
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert iteration.status == IterationStatus.FAILED
    assert fake.requests, "the real SDK called the fake API"
    assert raw_logs.texts and caplog.records and json_logs.text
    raw = "\n".join(raw_logs.texts)
    assert "401" in raw or "API key" in raw  # the failure itself is logged...
    assert_absent(API_KEY, raw, caplog.text, json_logs.text, iteration.error)  # ...never the key
    entries = list(ActivityLog.objects.filter(agent=agent))
    assert entries, "the failed iteration left no activity entry to search"
    for entry in entries:
        assert_absent(API_KEY, entry.message, str(entry.details))


def test_a_webhook_secret_and_its_signatures_are_never_logged(settings, caplog, raw_logs, json_logs):
    caplog.set_level(logging.DEBUG)
    hooks.allow_private_targets(settings)
    receivers = hooks.Receivers()
    try:
        ok = receivers(200)
        failing = receivers(500)
        agent = hooks.make_owner_agent()
        queued = []
        good = hooks.webhook_channel(agent.owner, ok.url())
        bad = hooks.webhook_channel(agent.owner, failing.url(), name="failing")
        for channel in (good, bad):
            alert = hooks.make_alert(agent, message=f"alert for {channel.name}", fingerprint=channel.name)
            delivery = Delivery.objects.create(alert=alert, channel=channel)
            queued.append(delivery)
            hooks.run_task(delivery.pk)
    finally:
        receivers.close()
    statuses = [Delivery.objects.get(pk=d.pk).status for d in queued]
    assert statuses == [DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING]
    signatures = [r["headers"]["X-Lab-Signature"] for r in ok.requests + failing.requests]
    raw, text = "\n".join(raw_logs.texts), caplog.text + json_logs.text
    assert "delivery" in raw
    assert_absent(hooks.SECRET, raw, text)
    for signature in signatures:
        assert_absent(signature.split("=", 1)[1], raw, text)


def test_a_signature_or_secret_that_reaches_a_log_call_is_scrubbed(json_logs):
    signature = sign(hooks.SECRET, 1700000000, b"{}")
    logging.getLogger("alerts.test").warning("sent headers X-Lab-Signature: %s with api key %s", signature,
                                             API_KEY)
    assert_absent(signature.split("=", 1)[1], json_logs.text)
    assert_absent(API_KEY, json_logs.text)
