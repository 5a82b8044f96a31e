"""Notification channel API (owner-scoped, with and without trailing slash), validation,
the write-only secret, test notifications and deliveries; and the channel admin."""

import json

import pytest
from rest_framework.test import APIClient

from alerts import notify
from alerts.channel_service import channel_create, channel_send_test
from alerts.models import Delivery, NotificationChannel
from core.errors import ValidationFailed
from tests.alerts.helpers import (
    SECRET,
    make_alert,
    make_owner_agent,
    run_task,
    webhook_channel,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db



BASE = "/api/notification-channels"


def post(api, path, data):
    return api.post(path, data=json.dumps(data), content_type="application/json")


def patch(api, path, data):
    return api.patch(path, data=json.dumps(data), content_type="application/json")


@pytest.mark.parametrize("slash", ["", "/"])
def test_create_a_webhook_returns_the_generated_secret_once(allow_private, api, user, slash):
    response = post(api, BASE + slash, {"name": "ops", "kind": "webhook", "target": "http://127.0.0.1:9/hook",
                                        "min_severity": "CRITICAL", "alert_types": ["ERROR"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert len(body["secret"]) >= 32 and body["has_secret"] is True
    channel = NotificationChannel.objects.get(pk=body["id"])
    assert channel.owner == user and channel.secret == body["secret"]
    assert channel.min_severity == "CRITICAL" and channel.alert_types == ["ERROR"]

    shown = api.get(f"{BASE}/{channel.pk}{slash}").json()
    assert "secret" not in shown and shown["has_secret"] is True
    assert body["secret"] not in api.get(BASE + slash).content.decode()


def test_a_secret_given_by_the_user_is_not_echoed(allow_private, api):
    response = post(api, BASE, {"name": "ops", "kind": "webhook", "target": "http://127.0.0.1:9/h",
                                "secret": SECRET})
    assert response.status_code == 201
    assert "secret" not in response.json()
    assert NotificationChannel.objects.get().secret == SECRET


def test_create_email_and_log_channels_with_defaults(api):
    email = post(api, BASE + "/", {"name": "mail", "kind": "email", "target": "oncall@example.com"}).json()
    log = post(api, BASE, {"name": "log", "kind": "log"}).json()
    assert email["min_severity"] == "WARNING" and email["rate_limit_per_minute"] == 10 and email["enabled"]
    assert "secret" not in email and email["has_secret"] is False
    assert log["kind"] == "log" and log["target"] == ""


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "kind": "webhook", "target": "http://10.0.0.1/hook"}, "target"),
        ({"name": "x", "kind": "webhook", "target": "http://169.254.169.254/latest/meta-data/"}, "target"),
        ({"name": "x", "kind": "webhook", "target": "http://[::ffff:127.0.0.1]/"}, "target"),
        ({"name": "x", "kind": "webhook", "target": "http://localhost/"}, "target"),
        ({"name": "x", "kind": "webhook", "target": "file:///etc/passwd"}, "target"),
        ({"name": "x", "kind": "webhook", "target": "gopher://example.com/"}, "target"),
        ({"name": "x", "kind": "webhook", "target": ""}, "target"),
        ({"name": "x", "kind": "email", "target": "not-an-email"}, "target"),
        ({"name": "x", "kind": "log", "target": "something"}, "target"),
        ({"name": "x", "kind": "sms", "target": "+100"}, "kind"),
        ({"name": "x", "kind": "log", "min_severity": "DEBUG"}, "min_severity"),
        ({"name": "x", "kind": "log", "alert_types": ["NOPE"]}, "alert_types"),
        ({"name": "x", "kind": "log", "alert_types": "ERROR"}, "alert_types"),
        ({"name": "x", "kind": "log", "rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"name": "x", "kind": "log", "rate_limit_per_minute": 601}, "rate_limit_per_minute"),
        ({"name": "x", "kind": "log", "colour": "red"}, "colour"),
        ({"name": "x", "kind": "webhook", "target": "https://8.8.8.8/", "secret": "short"}, "secret"),
        ({"kind": "log"}, "name"),
        ({"name": "x"}, "kind"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_creates_nothing(no_private, api, data, field):
    response = post(api, BASE, data)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not NotificationChannel.objects.exists()


def test_the_target_error_names_the_reason(no_private, api):
    response = post(api, BASE, {"name": "x", "kind": "webhook", "target": "http://10.0.0.1/hook"})
    assert "10.0.0.1 is a private address" in response.json()["target"][0]


def test_duplicate_names_are_refused(api):
    assert post(api, BASE, {"name": "ops", "kind": "log"}).status_code == 201
    response = post(api, BASE, {"name": "ops", "kind": "log"})
    assert response.status_code == 400 and "name" in response.json()


def test_a_public_webhook_target_is_accepted(no_private, api, monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))])
    response = post(api, BASE, {"name": "x", "kind": "webhook", "target": "https://hooks.example.test/in"})
    assert response.status_code == 201, response.content


def test_list_and_detail_are_owner_scoped(api, user):
    mine = channel_create(owner=user, data={"name": "mine", "kind": "log"})[0]
    theirs = channel_create(owner=UserFactory(), data={"name": "theirs", "kind": "log"})[0]
    staff = UserFactory(is_staff=True)
    channel_create(owner=staff, data={"name": "staff", "kind": "log"})

    listing = api.get(BASE).json()
    assert [c["id"] for c in listing["results"]] == [mine.pk]
    for slash in ("", "/"):
        assert api.get(f"{BASE}/{theirs.pk}{slash}").status_code == 404
        assert patch(api, f"{BASE}/{theirs.pk}{slash}", {"enabled": False}).status_code == 404
        assert api.post(f"{BASE}/{theirs.pk}/test{slash}").status_code == 404
        assert api.get(f"{BASE}/{theirs.pk}/deliveries{slash}").status_code == 404
        assert api.delete(f"{BASE}/{theirs.pk}{slash}").status_code == 404
    theirs.refresh_from_db()
    assert theirs.enabled


def test_anonymous_is_refused():
    assert APIClient().get(BASE).status_code == 403


def test_patch_changes_fields_and_keeps_the_rest(allow_private, api, user):
    channel, _secret = channel_create(owner=user, data={"name": "hook", "kind": "webhook",
                                                        "target": "http://127.0.0.1:9/a", "secret": SECRET})
    for slash in ("", "/"):
        response = patch(api, f"{BASE}/{channel.pk}{slash}", {"min_severity": "INFO", "rate_limit_per_minute": 30})
        assert response.status_code == 200, response.content
        assert "secret" not in response.json()
    channel.refresh_from_db()
    assert (channel.min_severity, channel.rate_limit_per_minute, channel.secret) == ("INFO", 30, SECRET)

    assert patch(api, f"{BASE}/{channel.pk}", {"target": "http://10.0.0.1/"}).status_code == 200  # allow-private
    assert patch(api, f"{BASE}/{channel.pk}", {"target": "ftp://x/"}).status_code == 400
    assert patch(api, f"{BASE}/{channel.pk}", {"owner": 1}).status_code == 400
    channel.refresh_from_db()
    assert channel.target == "http://10.0.0.1/"


def test_patch_secret_replaces_it_and_an_empty_secret_rotates_it(allow_private, api, user):
    channel, _ = channel_create(owner=user, data={"name": "hook", "kind": "webhook", "target": "http://127.0.0.1:9/"})
    new = "n" * 40
    response = patch(api, f"{BASE}/{channel.pk}", {"secret": new})
    assert "secret" not in response.json()
    channel.refresh_from_db()
    assert channel.secret == new
    rotated = patch(api, f"{BASE}/{channel.pk}", {"secret": ""}).json()["secret"]
    channel.refresh_from_db()
    assert rotated != new and channel.secret == rotated


def test_switching_kind_revalidates_the_target(api, user):
    channel, _ = channel_create(owner=user, data={"name": "c", "kind": "email", "target": "a@example.com"})
    response = patch(api, f"{BASE}/{channel.pk}", {"kind": "webhook"})
    assert response.status_code == 400 and "target" in response.json()


def test_delete(api, user):
    channel, _ = channel_create(owner=user, data={"name": "c", "kind": "log"})
    assert api.delete(f"{BASE}/{channel.pk}/").status_code == 204
    assert not NotificationChannel.objects.exists()


def test_send_a_test_notification_to_a_real_receiver(allow_private, api, user, receiver_factory):
    receiver = receiver_factory(200)
    channel, _ = channel_create(owner=user, data={"name": "hook", "kind": "webhook", "target": receiver.url(),
                                                  "secret": SECRET})
    response = api.post(f"{BASE}/{channel.pk}/test")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "error": "", "response_code": 200}
    [request] = receiver.requests
    assert receiver.verified(request)
    body = json.loads(request["body"])
    assert body["event"] == "test" and body["alert"]["severity"] == "INFO"
    assert request["headers"]["X-Lab-Delivery"].startswith("test-")
    assert not Delivery.objects.exists()


def test_a_failing_test_notification_reports_the_reason(allow_private, api, user, receiver_factory):
    receiver = receiver_factory(403)
    channel, _ = channel_create(owner=user, data={"name": "hook", "kind": "webhook", "target": receiver.url()})
    response = api.post(f"{BASE}/{channel.pk}/test/")
    assert response.json() == {"ok": False, "error": "HTTP 403 Forbidden", "response_code": 403}
    assert len(receiver.requests) == 1  # a test is never retried


def test_test_notification_by_email(settings, user):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    channel, _ = channel_create(owner=user, data={"name": "mail", "kind": "email", "target": "me@example.com"})
    outcome = channel_send_test(channel, user=user)
    assert outcome.ok
    assert mail.outbox[0].to == ["me@example.com"] and "test notification" in mail.outbox[0].body.lower()


def test_deliveries_of_a_channel(api, user, queued):
    agent = make_owner_agent(owner=user)
    channel, _ = channel_create(owner=user, data={"name": "log", "kind": "log", "min_severity": "INFO"})
    for n in range(3):
        [delivery] = notify.alert_notify(make_alert(agent, fingerprint=f"f{n}").pk)
        if n < 2:
            run_task(delivery.pk)
    for slash in ("", "/"):
        rows = api.get(f"{BASE}/{channel.pk}/deliveries{slash}").json()["results"]
        assert len(rows) == 3
        assert {r["status"] for r in rows} == {"succeeded", "pending"}
        assert set(rows[0]) >= {"alert", "alert_type", "severity", "sequence", "attempts", "last_error"}
    pending = api.get(f"{BASE}/{channel.pk}/deliveries?status=pending").json()["results"]
    assert len(pending) == 1
    assert api.get(f"{BASE}/{channel.pk}/deliveries?status=bogus").status_code == 400


def test_the_service_refuses_unknown_fields_directly(user):
    with pytest.raises(ValidationFailed) as info:
        channel_create(owner=user, data={"name": "x", "kind": "log", "owner": 3})
    assert "owner" in info.value.errors


def test_openapi_schema_lists_the_channel_routes(api):
    schema = api.get("/api/schema/?format=json").json()
    paths = set(schema["paths"])
    assert {"/api/notification-channels", "/api/notification-channels/{id}",
            "/api/notification-channels/{id}/test", "/api/notification-channels/{id}/deliveries"} <= {
        p.rstrip("/") for p in paths}


# --- admin ---------------------------------------------------------------------------------
@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


def test_admin_test_action_reports_each_row(allow_private, client, superuser, receiver_factory):
    good = receiver_factory(200)
    bad = receiver_factory(500)
    ok_channel = webhook_channel(superuser, good.url(), name="good")
    bad_channel = webhook_channel(superuser, bad.url(), name="bad")
    client.force_login(superuser)
    response = client.post(
        "/admin/alerts/notificationchannel/",
        {"action": "send_test_notification", "_selected_action": [ok_channel.pk, bad_channel.pk]},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert any("good: test notification delivered (HTTP 200)" in t for t in texts), texts
    assert any("bad: test notification failed: HTTP 500" in t for t in texts), texts


def test_admin_hides_the_secret_and_scopes_non_superusers(client, superuser):
    from django.contrib.auth.models import Permission

    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="alerts"))
    mine = webhook_channel(staff, "https://hooks.example.test/a", name="mine")
    webhook_channel(superuser, "https://hooks.example.test/b", name="root's")
    client.force_login(staff)
    listing = client.get("/admin/alerts/notificationchannel/").content.decode()
    assert "mine" in listing and "root&#x27;s" not in listing and "root's" not in listing
    page = client.get(f"/admin/alerts/notificationchannel/{mine.pk}/change/").content.decode()
    assert SECRET not in page
    assert client.get("/admin/alerts/delivery/").status_code == 200


def test_admin_create_goes_through_the_service(no_private, client, superuser):
    client.force_login(superuser)
    form = {"owner": superuser.pk, "name": "hook", "kind": "webhook", "target": "http://10.0.0.1/",
            "min_severity": "WARNING", "enabled": "on", "rate_limit_per_minute": 10}
    response = client.post("/admin/alerts/notificationchannel/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "10.0.0.1 is a private address" in response.content.decode()
    assert not NotificationChannel.objects.exists()

    form["target"] = "http://93.184.216.34/in"
    response = client.post("/admin/alerts/notificationchannel/add/", form, follow=True)
    channel = NotificationChannel.objects.get()
    assert len(channel.secret) >= 32  # generated, shown once in a message
    assert any(channel.secret in str(m) for m in response.context["messages"])
