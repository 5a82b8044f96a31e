"""Notification channels: create, update, delete, and send a test notification.

The API, the admin and any command call these; every bad input raises ValidationFailed
naming the field and the rule, and changes nothing.

Fields a caller may set: name, kind (log | webhook | email), target, min_severity,
alert_types (list of alert types; empty = all), enabled, secret, rate_limit_per_minute
(1..600). Anything else is refused. A webhook's target is an http(s) URL that passes the
SSRF guard (scheme, literal and resolved addresses); an email's target is an address; a log
channel has no target. A webhook without a secret gets a generated one, returned once by
`channel_create` / `channel_update` and never shown again (the API and the admin treat the
secret as write-only).
"""

import logging
import secrets
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from alerts.models import AlertType, ChannelKind, NotificationChannel, Severity
from alerts.transports import ssrf, transport_for
from alerts.transports.base import build_test_payload
from config.redaction import redact
from core.errors import ValidationFailed

logger = logging.getLogger("alerts.notifications")

FIELDS = ("name", "kind", "target", "min_severity", "alert_types", "enabled", "secret", "rate_limit_per_minute")
RATE_LIMIT_MIN, RATE_LIMIT_MAX = 1, 600
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 200
NAME_MAX_LENGTH = 120
TARGET_MAX_LENGTH = 500


def generate_secret():
    return secrets.token_urlsafe(32)


def check_fields(data):
    if not isinstance(data, dict):
        raise ValidationFailed({"non_field_errors": "expected a JSON object of channel fields"})
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValidationFailed({name: f"unknown field; allowed: {', '.join(FIELDS)}" for name in unknown})


def validate_for(values, *, owner_id, exclude_pk=None):
    """validate_channel plus the per-owner name check, for forms that validate before saving."""
    cleaned = validate_channel(values)
    _check_name_free(owner_id, cleaned["name"], exclude_pk=exclude_pk)
    return cleaned


def validate_channel(values):
    """Check a full set of channel values (after merging an update); returns cleaned values."""
    errors = {}
    cleaned = dict(values)

    name = values.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "required, a non-empty string"
    elif len(name.strip()) > NAME_MAX_LENGTH:
        errors["name"] = f"at most {NAME_MAX_LENGTH} characters"
    else:
        cleaned["name"] = name.strip()

    kind = values.get("kind")
    if kind not in ChannelKind.values:
        errors["kind"] = f"must be one of {', '.join(ChannelKind.values)}"

    target = values.get("target", "")
    if target is None:
        target = ""
    if not isinstance(target, str):
        errors["target"] = "must be a string"
    elif len(target) > TARGET_MAX_LENGTH:
        errors["target"] = f"at most {TARGET_MAX_LENGTH} characters"
    elif kind == ChannelKind.WEBHOOK:
        try:
            ssrf.check_url(target.strip())
            cleaned["target"] = target.strip()
        except ssrf.BlockedDestination as exc:
            errors["target"] = f"webhook URL {exc}"
    elif kind == ChannelKind.EMAIL:
        try:
            validate_email(target.strip())
            cleaned["target"] = target.strip()
        except ValidationError:
            errors["target"] = "must be an email address"
    elif kind == ChannelKind.LOG:
        if target.strip():
            errors["target"] = "a log channel takes no target; leave it empty"
        cleaned["target"] = ""

    if values.get("min_severity") not in Severity.values:
        errors["min_severity"] = f"must be one of {', '.join(Severity.values)}"

    alert_types = values.get("alert_types", [])
    if alert_types is None:
        alert_types = []
    if not isinstance(alert_types, list) or not all(isinstance(t, str) for t in alert_types):
        errors["alert_types"] = "must be a list of alert types (empty = every type)"
    else:
        unknown = [t for t in alert_types if t not in AlertType.values]
        if unknown:
            errors["alert_types"] = f"unknown type(s) {', '.join(unknown)}; known: {', '.join(AlertType.values)}"
        else:
            cleaned["alert_types"] = list(dict.fromkeys(alert_types))

    if not isinstance(values.get("enabled"), bool):
        errors["enabled"] = "must be true or false"

    rate = values.get("rate_limit_per_minute")
    if isinstance(rate, bool) or not isinstance(rate, int) or not RATE_LIMIT_MIN <= rate <= RATE_LIMIT_MAX:
        errors["rate_limit_per_minute"] = f"must be an integer from {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX}"

    secret = values.get("secret", "")
    if secret is None:
        secret = ""
    if not isinstance(secret, str):
        errors["secret"] = "must be a string"
    elif secret and not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        errors["secret"] = f"must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters (or omitted to generate one)"
    else:
        cleaned["secret"] = secret

    if errors:
        raise ValidationFailed(errors)
    return cleaned


def defaults():
    return {
        "target": "",
        "min_severity": Severity.WARNING.value,
        "alert_types": [],
        "enabled": True,
        "secret": "",
        "rate_limit_per_minute": 10,
    }


def _ensure_secret(values):
    """A webhook without a secret gets one; returns the new secret (to show once) or None."""
    if values["kind"] == ChannelKind.WEBHOOK and not values["secret"]:
        values["secret"] = generate_secret()
        return values["secret"]
    return None


def _save(channel, values):
    for field in FIELDS:
        setattr(channel, field, values[field])
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError:
        raise ValidationFailed({"name": "you already have a channel with this name"})
    return channel


def _check_name_free(owner_id, name, exclude_pk=None):
    qs = NotificationChannel.objects.filter(owner_id=owner_id, name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed({"name": "you already have a channel with this name"})


def channel_create(*, owner, data, instance=None):
    """Create a channel. Returns (channel, new_secret or None): the secret is shown once.

    `instance` lets the admin have its own unsaved object filled in and saved.
    """
    check_fields(data)
    values = validate_channel({**defaults(), **data})
    _check_name_free(owner.pk, values["name"])
    new_secret = _ensure_secret(values)
    channel = instance if instance is not None else NotificationChannel()
    channel.owner = owner
    channel = _save(channel, values)
    logger.info("channel %s (%s) created by user %s", channel.pk, channel.kind, owner.pk,
                extra={"channel_id": channel.pk})
    return channel, new_secret


def channel_update(channel, *, data):
    """Change some fields (the rest keep their values). Returns (channel, new_secret or None).

    A secret is replaced only when `secret` is given; switching to webhook without one
    generates it. Sending `"secret": ""` on a webhook rotates it to a generated one.
    """
    check_fields(data)
    current = {field: getattr(channel, field) for field in FIELDS}
    values = validate_channel({**current, **data})
    _check_name_free(channel.owner_id, values["name"], exclude_pk=channel.pk)
    if values["kind"] != ChannelKind.WEBHOOK:
        values["secret"] = ""
    new_secret = _ensure_secret(values)
    channel = _save(channel, values)
    logger.info("channel %s updated (%s)", channel.pk, ", ".join(sorted(data)) or "no fields",
                extra={"channel_id": channel.pk})
    return channel, new_secret


def channel_delete(channel):
    pk = channel.pk
    channel.delete()
    logger.info("channel %s deleted", pk, extra={"channel_id": pk})


@dataclass(frozen=True)
class NotificationTestResult:
    ok: bool
    error: str = ""
    response_code: int | None = None


def channel_send_test(channel, *, user=None):
    """Send an INFO test payload now, through the channel's normal code path (no retries).

    Returns NotificationTestResult(ok, error, response_code); the error never contains the secret.
    """
    payload = build_test_payload(channel, user=user)
    delivery_id = f"test-{uuid.uuid4().hex[:12]}"
    try:
        result = transport_for(channel.kind).send(channel, payload, delivery_id=delivery_id)
    except Exception as exc:
        logger.exception("test notification on channel %s raised", channel.pk, extra={"channel_id": channel.pk})
        return NotificationTestResult(ok=False, error=f"unexpected error: {type(exc).__name__}")
    error = redact(result.error, channel.secret)
    logger.info("test notification on channel %s: %s", channel.pk, "ok" if result.ok else error,
                extra={"channel_id": channel.pk, "response_code": result.response_code})
    return NotificationTestResult(ok=result.ok, error=error, response_code=result.response_code)
