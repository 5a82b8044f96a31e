"""Redaction: the one scrubber of secrets, for logs, alert deliveries and refiner errors.

It lives in `config` (which imports no app) so that every app may use it. Two layers: the secret
values the settings know (API keys, SECRET_KEY, passwords), replaced wherever they appear, and
patterns that look like a credential whoever formats it (header values, bearer tokens, key=value,
passwords in URLs). A caller may name more secrets it holds (a channel's signing secret).
"""

import re

from django.conf import settings

REDACTED = "[redacted]"
_PATTERNS = [
    # Anthropic API keys, whoever formats them.
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}"), REDACTED),
    # HMAC signatures (the webhook's X-Lab-Signature: sha256=<hex>).
    (re.compile(r"(sha(?:1|256|512)=)[0-9a-fA-F]{16,}"), r"\1" + REDACTED),
    # Credentials in header form, whatever the quoting: "Authorization: Bearer x",
    # "'x-api-key': 'x'", "X-Lab-Signature=...", "Cookie: sessionid=...".
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bx-lab-signature|\bcookie|\bset-cookie)"
            r"([\"']?\s*[:=]\s*[\"']?)([^\"'\r\n,}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # Bare auth schemes (DRF's "Token <key>", OAuth "Bearer <token>", "Basic <b64>").
    (re.compile(r"\b(Bearer|Token|Basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + REDACTED),
    # key=value / "key": "value" where the key names a secret.
    (
        re.compile(
            r"(?i)(\b[\w-]*(?:api[_-]?key|secret|password|passwd|access[_-]?token|auth[_-]?token|\btoken))"
            r"([\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # SQL debug lines (DEBUG=True): the value compared with a token, session or password column.
    (
        re.compile(r"""(?i)("(?:key|session_key|password|secret|token)")(\s*(?:=|IN\s*\()\s*)'[^']*'"""),
        r"\1\2'" + REDACTED + "'",
    ),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
]
_MIN_LITERAL_SECRET = 6
_literal_cache = {"key": None, "pattern": None}


def _literal_secrets():
    """Secret values known to the settings; each is scrubbed wherever it appears."""
    try:
        if not settings.configured:
            return ()
        values = [
            getattr(settings, "ANTHROPIC_API_KEY", ""),
            getattr(settings, "SECRET_KEY", ""),
            getattr(settings, "LAB_METRICS_TOKEN", ""),
            getattr(settings, "EMAIL_HOST_PASSWORD", ""),
            settings.DATABASES.get("default", {}).get("PASSWORD", ""),
        ]
    except Exception:  # logging must never fail because settings are half-loaded
        return ()
    return tuple(sorted({str(v) for v in values if v and len(str(v)) >= _MIN_LITERAL_SECRET}, key=len, reverse=True))


def _literal_pattern():
    secrets = _literal_secrets()
    if secrets != _literal_cache["key"]:
        _literal_cache["key"] = secrets
        _literal_cache["pattern"] = re.compile("|".join(re.escape(s) for s in secrets)) if secrets else None
    return _literal_cache["pattern"]


def redact(text, *extra_secrets):
    """`text` with every known secret value and every secret-looking pattern replaced."""
    if not text:
        return text
    text = str(text)
    for secret in extra_secrets:
        if secret:
            text = text.replace(str(secret), REDACTED)
    literal = _literal_pattern()
    if literal is not None:
        text = literal.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_structure(value):
    """Every string inside dicts, lists and tuples redacted (tuples come back as lists)."""
    if isinstance(value, dict):
        return {k: redact_structure(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_structure(v) for v in value]
    return redact(value) if isinstance(value, str) else value
