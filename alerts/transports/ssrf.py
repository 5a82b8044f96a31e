"""The webhook SSRF guard: only http(s), and only to addresses that are globally routable.

A webhook target is typed by a user, and the worker calling it sits next to the database, the
broker and (in a cloud) the metadata service at 169.254.169.254. So:

- only ``http``/``https`` URLs with a host and no credentials;
- the host is resolved when the connection opens and EVERY address is checked (one bad address
  refuses the host), then the connection goes to a vetted address, never resolving again (DNS
  rebinding); the Host header, SNI and certificate check still use the URL's host name;
- refused: loopback, private, link-local (with the metadata address), CGNAT (100.64/10),
  unspecified, multicast, reserved and documentation ranges, IPv6 ULA, and IPv6 forms embedding
  an IPv4 address (mapped, 6to4, Teredo, NAT64), judged by the IPv4 they carry.
  ``ipaddress.is_global`` lets some of these through on this Python, hence the explicit checks;
- ``LAB_WEBHOOK_ALLOW_PRIVATE`` allows loopback, private, CGNAT and ULA, never unspecified,
  multicast, reserved or link-local: the metadata service is never a receiver;
- a refusal raises ``BlockedDestination`` before any socket is created. Redirects are decided by
  the webhook transport (alerts/transports/webhook.py), each hop through this same guard.
"""

import contextlib
import http.client
import ipaddress
import socket
import threading
from urllib.parse import urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class BlockedDestination(ValueError):
    """The URL or one of its host's addresses may not be called. The message says why."""


def allow_private_default():
    return bool(getattr(settings, "LAB_WEBHOOK_ALLOW_PRIVATE", False))


def _embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "an IPv4-mapped IPv6"
    if ip.sixtofour is not None:
        return ip.sixtofour, "a 6to4 IPv6"
    if ip.teredo is not None:
        return ip.teredo[1], "a Teredo IPv6"
    for net in NAT64:
        if ip in net:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "a NAT64 IPv6"
    return None, ""


def address_refusal(address, *, allow_private=None):
    """Why `address` (str or ip_address) may not be called, as a phrase ("a loopback
    address"), or None when it may."""
    if allow_private is None:
        allow_private = allow_private_default()
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if ip.version == 6:
        inner, form = _embedded_ipv4(ip)
        if inner is not None:
            reason = address_refusal(inner, allow_private=allow_private)
            return f"{form} address of {inner}, which is {reason}" if reason else None
    # Never allowed, whatever the setting says.
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address (the range of cloud metadata services)"
    # Refused unless private targets are allowed (::1 sits inside the reserved ::/8).
    if ip.is_loopback:
        return None if allow_private else "a loopback address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.version == 4 and ip in CGNAT:
        phrase = "a carrier-grade NAT address (100.64.0.0/10)"
    elif ip.is_private:
        phrase = "a private address"
    elif not ip.is_global:
        return "not a globally routable address"
    else:
        return None
    return None if allow_private else phrase


def parse_url(url):
    """Split a webhook URL into (scheme, host, port, path-with-query), or refuse it."""
    if not isinstance(url, str) or not url.strip():
        raise BlockedDestination("must be an http:// or https:// URL")
    if any(ch in url for ch in "\r\n\t ") or any(ord(ch) < 32 for ch in url):
        raise BlockedDestination("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedDestination(f"is not a valid URL ({exc})")
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedDestination(
            f"scheme {scheme + '://' if scheme else '(none)'} is not allowed; only http:// and https://"
        )
    if parts.username is not None or parts.password is not None:
        raise BlockedDestination("must not carry credentials (user:password@); use the channel secret")
    host = parts.hostname
    if not host:
        raise BlockedDestination("has no host")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port or DEFAULT_PORTS[scheme], path


def _literal_ip(host):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def check_url(url, *, allow_private=None, resolve=True):
    """Refuse a URL that may not be called, with a message naming the reason.

    With `resolve`, a host name is looked up and every address checked; a name that does not
    resolve is NOT refused here (it is checked again at every connection), so a receiver
    that is not up yet can still be configured.
    """
    _scheme, host, port, _path = parse_url(url)
    literal = _literal_ip(host)
    if literal is not None:
        reason = address_refusal(literal, allow_private=allow_private)
        if reason:
            raise BlockedDestination(f"refused: {literal} is {reason}")
        return
    if resolve:
        try:
            resolve_and_vet(host, port, allow_private=allow_private)
        except socket.gaierror:
            return


def resolve_and_vet(host, port, *, allow_private=None):
    """Every (family, sockaddr) the host resolves to, after checking each one.

    Raises BlockedDestination when ANY address is refused, socket.gaierror when the name
    does not resolve.
    """
    literal = _literal_ip(host)
    if literal is not None:
        # An address literal needs no resolver (and must not depend on one).
        reason = address_refusal(literal, allow_private=allow_private)
        if reason:
            raise BlockedDestination(f"refused: {host} is {reason}")
        if literal.version == 6:
            return [(socket.AF_INET6, (str(literal), port, 0, 0))]
        return [(socket.AF_INET, (str(literal), port))]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    vetted = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise BlockedDestination(f"refused: {host} resolves to a non-IP address family")
        reason = address_refusal(sockaddr[0], allow_private=allow_private)
        if reason:
            raise BlockedDestination(f"refused: {host} resolves to {sockaddr[0]}, which is {reason}")
        if (family, sockaddr) not in vetted:
            vetted.append((family, sockaddr))
    if not vetted:
        raise socket.gaierror(f"{host} has no address")
    return vetted


def _connect_socket(family, sockaddr, timeout):
    """Open a TCP connection to one vetted address (the one seam tests may redirect)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedMixin:
    """Resolve, vet, then connect to a vetted address; never a second lookup."""

    allow_private = None

    def _vetted_socket(self):
        addresses = resolve_and_vet(self.host, self.port, allow_private=self.allow_private)
        last_error = None
        for family, sockaddr in addresses:
            try:
                sock = _connect_socket(family, sockaddr, self.timeout)
            except OSError as exc:
                last_error = exc
                continue
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last_error


class PinnedHTTPConnection(_PinnedMixin, http.client.HTTPConnection):
    def connect(self):
        self.sock = self._vetted_socket()


class PinnedHTTPSConnection(_PinnedMixin, http.client.HTTPSConnection):
    def connect(self):
        sock = self._vetted_socket()
        # SNI and the certificate check use the URL's host name, not the pinned address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def open_connection(scheme, host, port, *, timeout, allow_private=None):
    """An http.client connection whose connect() goes through the guard (lazily, on request)."""
    cls = PinnedHTTPSConnection if scheme == "https" else PinnedHTTPConnection
    conn = cls(host, port, timeout=timeout)
    conn.allow_private = allow_private_default() if allow_private is None else allow_private
    return conn


class Deadline:
    """Shuts the connection's socket when the whole exchange overruns `seconds`.

    The socket timeout bounds each read, not the exchange: a receiver trickling a byte every
    few seconds would otherwise hold a worker for minutes.
    """

    def __init__(self, conn, seconds):
        self.conn = conn
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self):
        self.expired = True
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False
