"""The webhook transport: a signed JSON POST through the SSRF guard.

Headers:
    Content-Type: application/json
    X-Lab-Timestamp: <unix seconds>
    X-Lab-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    X-Lab-Delivery: <delivery id> ("test-<hex>" for a test notification)

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares it in
constant time, rejects old timestamps (replays), and deduplicates on X-Lab-Delivery: a
delivery may arrive more than once (a worker lost after sending is retried).

Outcomes: 2xx is success. 408, 429, 5xx, timeouts and connection errors are retried by
the delivery task (alerts/notify.py) with exponential backoff and jitter; a 429's
Retry-After is honoured as a floor. Any other 4xx, a refused destination, and a redirect
that is not followed are permanent failures.

Redirect rule: the client never follows redirects by itself. A 307 or 308 (which keep the
method and body) is followed up to MAX_REDIRECTS hops, each hop sent through the same SSRF
guard (scheme, every resolved address, pinned connection) and never from https down to
http; the body and signature are sent unchanged. 301, 302 and 303 are not followed (they
would turn the POST into a GET and drop the alert): a permanent failure telling the owner to
point the channel at the final URL.
"""

import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
from urllib.parse import urljoin

from django.conf import settings

from alerts.transports import ssrf
from alerts.transports.base import SendResult, Transport

MAX_REDIRECTS = 3
FOLLOWED_REDIRECTS = (307, 308)
MAX_RESPONSE_BYTES = 64 * 1024
MAX_RETRY_AFTER_SECONDS = 600
USER_AGENT = "AgentLearningLab-Webhook/1.0"


def encode_body(payload):
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(secret, timestamp, body):
    """`sha256=<hex>` over f"{timestamp}.{body}" (body as the exact bytes sent)."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret, body, delivery_id, timestamp=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Lab-Timestamp": timestamp,
        "X-Lab-Delivery": str(delivery_id),
    }
    if secret:
        headers["X-Lab-Signature"] = sign(secret, timestamp, body)
    return headers


def _retry_after(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class _Response:
    def __init__(self, status, reason, location, retry_after):
        self.status = status
        self.reason = reason
        self.location = location
        self.retry_after = retry_after


def post_once(url, body, headers, *, timeout, allow_private=None):
    """One POST through the guard. Raises BlockedDestination before connecting to a refused
    address, TimeoutError when the exchange overruns, OSError/HTTPException otherwise."""
    scheme, host, port, path = ssrf.parse_url(url)
    conn = ssrf.open_connection(scheme, host, port, timeout=timeout, allow_private=allow_private)
    try:
        with ssrf.Deadline(conn, timeout) as deadline:
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read(MAX_RESPONSE_BYTES)
            except (OSError, http.client.HTTPException):
                if deadline.expired:
                    raise TimeoutError(f"timed out after {timeout:g}s")
                raise
        return _Response(
            response.status,
            response.reason,
            response.getheader("Location"),
            _retry_after(response.getheader("Retry-After")),
        )
    finally:
        conn.close()


class WebhookTransport(Transport):
    kind = "webhook"

    def send(self, channel, payload, *, delivery_id):
        body = encode_body(payload)
        headers = signed_headers(channel.secret, body, delivery_id)
        return deliver(channel.target, body, headers)


def deliver(url, body, headers, *, timeout=None, allow_private=None):
    """POST body to url, following only guarded 307/308 redirects; one SendResult."""
    timeout = settings.LAB_WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    for hop in range(MAX_REDIRECTS + 1):
        where = "redirect target" if hop else "target"
        try:
            host = ssrf.parse_url(url)[1]
            response = post_once(url, body, headers, timeout=timeout, allow_private=allow_private)
        except ssrf.BlockedDestination as exc:
            return SendResult.permanent(f"{where} {exc}")
        except TimeoutError:
            return SendResult.retry(f"timed out after {timeout:g}s ({host})")
        except socket.gaierror:
            return SendResult.retry(f"{host} does not resolve")
        except ssl.SSLError as exc:
            return SendResult.retry(f"TLS error with {host}: {exc.reason or type(exc).__name__}")
        except (OSError, http.client.HTTPException) as exc:
            return SendResult.retry(f"connection to {host} failed: {type(exc).__name__}: {exc}"[:300])

        status = response.status
        if 200 <= status < 300:
            return SendResult.success(status)
        if status in FOLLOWED_REDIRECTS and response.location:
            if hop == MAX_REDIRECTS:
                return SendResult.permanent(f"more than {MAX_REDIRECTS} redirects", status)
            next_url = urljoin(url, response.location)
            if url.lower().startswith("https:") and not next_url.lower().startswith("https:"):
                return SendResult.permanent("redirect from https to a non-https URL refused", status)
            url = next_url
            continue
        if 300 <= status < 400:
            return SendResult.permanent(
                f"HTTP {status}: only 307/308 redirects are followed; point the channel at the final URL",
                status,
            )
        text = f"HTTP {status} {response.reason}".strip()
        if status in (408, 429) or status >= 500:
            return SendResult.retry(text, status, retry_after=response.retry_after)
        return SendResult.permanent(text, status)
    return SendResult.permanent(f"more than {MAX_REDIRECTS} redirects")  # pragma: no cover
