"""GET /health (no authentication) and GET /metrics (token or address allow-list).

/health answers 200 {"status": "ok", ...} when the database, the broker, beat and at least
one worker are healthy, else 503 {"status": "unhealthy", "failing": [...], ...}; the body
holds no secret, host name or error text (see config.observability.health). `?scope=web`
checks only the database and the broker: use it for a load balancer deciding whether this
web process can serve requests, so that a dead beat does not take every web node out of
rotation; use the full /health for monitoring and the launcher.

/metrics is the Prometheus exposition (text format, or OpenMetrics when asked through the
Accept header). It is served to a request carrying `Authorization: Bearer <LAB_METRICS_TOKEN>`
or coming from an address in LAB_METRICS_ALLOW_IPS (addresses or networks, matched against
REMOTE_ADDR: behind a proxy, every request comes from the proxy, so use the token there).
Otherwise 401 when a token is configured (the scraper may authenticate), else 403.
"""

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.observability import health, metrics

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def health_view(request):
    if request.GET.get("scope") == "web":
        parts = {"database": health.check_database(), "broker": health.check_broker()}
        failing = [name for name, part in parts.items() if not part["ok"]]
        body = {"status": "ok" if not failing else "unhealthy", "healthy": not failing, "failing": failing,
                "scope": "web", **{name: _strip(part) for name, part in parts.items()}}
    else:
        body = health.health_report(public=True)
    return JsonResponse(body, status=200 if body["healthy"] else 503)


def _strip(part):
    return {k: v for k, v in part.items() if k != "detail"}


def _allowed_networks():
    return [ipaddress.ip_network(value, strict=False) for value in settings.LAB_METRICS_ALLOW_IPS]


def _from_allowed_address(request):
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in _allowed_networks())


def _has_token(request):
    token = settings.LAB_METRICS_TOKEN
    if not token:
        return False
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics_view(request):
    if not (_has_token(request) or _from_allowed_address(request)):
        if settings.LAB_METRICS_TOKEN:
            response = HttpResponse("metrics: a valid bearer token is required\n", status=401,
                                    content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse("metrics: this address is not allowed (LAB_METRICS_ALLOW_IPS)\n", status=403,
                            content_type="text/plain")
    body, content_type = metrics.render(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(body, content_type=content_type)
