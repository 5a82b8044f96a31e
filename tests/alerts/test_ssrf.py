"""The webhook SSRF guard: refused targets make no connection at all; redirects are re-checked;
connections are pinned to the vetted address."""

import json
import socket

import pytest

from alerts.models import Delivery, DeliveryStatus
from alerts.transports import ssrf, webhook
from alerts.transports.ssrf import BlockedDestination, address_refusal, check_url
from tests.alerts.helpers import (
    make_alert,
    make_owner_agent,
    one_delivery,
    run_task,
    webhook_channel,
)

BODY = b'{"event":"alert"}'
HEADERS = {"Content-Type": "application/json", "X-Lab-Delivery": "1", "X-Lab-Timestamp": "0"}
PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def connections(monkeypatch):
    """Every outgoing TCP connection attempt, from any code path, recorded (and refused)."""
    attempts = []
    real_connect = socket.socket.connect

    def spy_connect(sock, address):
        attempts.append(address)
        return real_connect(sock, address)

    def spy_create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError("create_connection must not be used")

    monkeypatch.setattr(socket.socket, "connect", spy_connect)
    monkeypatch.setattr(socket, "create_connection", spy_create_connection)
    return attempts


@pytest.fixture
def listener():
    """A listening socket on 127.0.0.1 that would see any connection made to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    sock.setblocking(False)
    yield sock
    sock.close()


def accepted_any(sock):
    try:
        conn, _addr = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def fake_dns(monkeypatch, table):
    """Resolve the names of `table` (name -> [addresses]); anything else does not resolve."""
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for address in table[host]:
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


REFUSED_LITERALS = [
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "https://127.0.0.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
    "http://0x7f.1/hook",
    "http://127.1/hook",
]


@pytest.mark.parametrize("url", REFUSED_LITERALS)
def test_non_global_addresses_are_refused_without_any_connection(no_private, connections, url):
    result = webhook.deliver(url, BODY, HEADERS)
    assert not result.ok and not result.retryable
    assert "refused" in result.error
    assert connections == []


@pytest.mark.parametrize("url", [u for u in REFUSED_LITERALS if "[" in u or u.split("/")[2][0].isdigit()])
def test_save_time_check_refuses_the_same_set(no_private, url):
    with pytest.raises(BlockedDestination, match="refused"):
        check_url(url)


def test_loopback_listener_sees_no_connection(no_private, listener, connections):
    port = listener.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://[::ffff:127.0.0.1]:{port}/"):
        result = webhook.deliver(url, BODY, HEADERS)
        assert not result.ok and not result.retryable and "refused" in result.error, url
    assert connections == []
    assert not accepted_any(listener)


def test_the_same_listener_is_reached_when_private_targets_are_allowed(no_private, listener):
    # The control for the test above: the listener does record a connection.
    port = listener.getsockname()[1]
    no_private.LAB_WEBHOOK_TIMEOUT_SECONDS = 0.3
    webhook.deliver(f"http://127.0.0.1:{port}/", BODY, HEADERS, allow_private=True)
    assert accepted_any(listener)


def test_a_name_resolving_to_a_private_address_is_refused(no_private, connections, monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.test": ["10.1.2.3"], "mixed.example.test": [PUBLIC_IP, "192.168.0.7"]})
    for host, private in (("hooks.example.test", "10.1.2.3"), ("mixed.example.test", "192.168.0.7")):
        result = webhook.deliver(f"https://{host}/hook", BODY, HEADERS)
        assert not result.ok and not result.retryable
        assert f"{host} resolves to {private}, which is a private address" in result.error
        with pytest.raises(BlockedDestination):
            check_url(f"https://{host}/hook")
    assert connections == []


def test_localhost_is_refused_by_resolution(no_private, connections):
    result = webhook.deliver("http://localhost/hook", BODY, HEADERS)
    assert "refused" in result.error and "loopback" in result.error
    assert connections == []


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com:70/_x", "javascript:alert(1)",
     "dict://example.com:11211/", "//example.com/hook", "example.com/hook", "", "http:///nohost",
     "http://user:pass@example.com/hook", "http://exa mple.com/", "http://example.com/\r\nX-Injected: 1"],
)
def test_non_http_urls_are_refused(no_private, connections, url):
    result = webhook.deliver(url, BODY, HEADERS)
    assert not result.ok and not result.retryable
    with pytest.raises(BlockedDestination):
        check_url(url)
    assert connections == []


def test_allow_private_permits_private_but_never_metadata_or_unspecified():
    for address in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "::1", "fc00::1",
                    "::ffff:127.0.0.1"):
        assert address_refusal(address, allow_private=True) is None, address
        assert address_refusal(address, allow_private=False) is not None, address
    for address in ("169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1"):
        assert address_refusal(address, allow_private=True) is not None, address
    for address in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert address_refusal(address, allow_private=False) is None, address


def test_an_unresolvable_name_is_accepted_at_save_time_and_retried_at_send_time(no_private, monkeypatch,
                                                                                   connections):
    fake_dns(monkeypatch, {})
    check_url("https://not-yet-there.example.test/hook")
    result = webhook.deliver("https://not-yet-there.example.test/hook", BODY, HEADERS)
    assert result.retryable and "does not resolve" in result.error
    assert connections == []


# --- pinning and redirects -----------------------------------------------------------------
@pytest.fixture
def route_public_to(monkeypatch):
    """Make PUBLIC_IP reach a local receiver, at the one connect seam of the guard."""
    routed = []

    def route(port):
        real = ssrf._connect_socket

        def connect(family, sockaddr, timeout):
            routed.append(sockaddr)
            if sockaddr[0] == PUBLIC_IP:
                return real(socket.AF_INET, ("127.0.0.1", port), timeout)
            return real(family, sockaddr, timeout)

        monkeypatch.setattr(ssrf, "_connect_socket", connect)
        return routed

    return route


def test_the_connection_is_pinned_to_the_vetted_address(no_private, monkeypatch, receiver_factory, route_public_to):
    receiver = receiver_factory(200)
    # A rebinding resolver: public on the first lookup, loopback on any later one.
    answers = iter([[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]])
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in next(answers)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    routed = route_public_to(receiver.port)
    result = webhook.deliver("http://rebind.example.test/hook", BODY, HEADERS)
    assert result.ok
    assert calls == ["rebind.example.test"]  # resolved once, at connect time
    assert routed == [(PUBLIC_IP, 80)]  # connected to the address that was checked
    assert receiver.requests[0]["headers"]["Host"] == "rebind.example.test"


def test_https_sends_the_host_name_as_sni(no_private, monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.test": [PUBLIC_IP]})
    seen = {}

    class FakeSocket:
        def setsockopt(self, *args):
            pass

        def close(self):
            pass

    class FakeContext:
        def wrap_socket(self, sock, server_hostname=None):
            seen["server_hostname"] = server_hostname
            return sock

    monkeypatch.setattr(ssrf, "_connect_socket", lambda family, sockaddr, timeout: seen.update(addr=sockaddr)
                        or FakeSocket())
    conn = ssrf.open_connection("https", "hooks.example.test", 443, timeout=1)
    conn._context = FakeContext()
    conn.connect()
    assert seen == {"server_hostname": "hooks.example.test", "addr": (PUBLIC_IP, 443)}


@pytest.mark.django_db
def test_a_redirect_to_a_private_address_is_refused(no_private, monkeypatch, receiver_factory, route_public_to,
                                                      listener, queued):
    port = listener.getsockname()[1]
    receiver = receiver_factory({"status": 307, "headers": {"Location": f"http://127.0.0.1:{port}/steal"}})
    fake_dns(monkeypatch, {"hooks.example.test": [PUBLIC_IP]})
    routed = route_public_to(receiver.port)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, "http://hooks.example.test/hook")
    delivery = one_delivery(make_alert(agent), channel, queued)

    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "redirect target refused: 127.0.0.1 is a loopback address" in delivery.last_error
    assert len(receiver.requests) == 1
    assert routed == [(PUBLIC_IP, 80)]
    assert not accepted_any(listener)


@pytest.mark.django_db
def test_a_redirect_to_the_metadata_service_is_refused_even_with_private_allowed(
    allow_private, receiver_factory, queued, connections
):
    receiver = receiver_factory({"status": 308, "headers": {"Location": "http://169.254.169.254/latest/meta-data/"}})
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    run_task(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "link-local" in delivery.last_error
    assert [a for a in connections if a[0] == "169.254.169.254"] == []
    assert len(connections) == 1  # the receiver only


@pytest.mark.django_db
def test_a_redirect_to_a_non_http_scheme_is_refused(allow_private, receiver_factory, queued):
    receiver = receiver_factory({"status": 307, "headers": {"Location": "file:///etc/passwd"}})
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    run_task(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "scheme file://" in delivery.last_error


@pytest.mark.django_db
def test_a_refused_channel_target_fails_its_delivery_permanently(no_private, queued, connections):
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, "http://10.0.0.1/hook")  # bypasses the service, as old rows might
    delivery = one_delivery(make_alert(agent), channel, queued)
    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert "10.0.0.1 is a private address" in delivery.last_error
    assert connections == []
    assert Delivery.objects.count() == 1


def test_https_downgrade_on_redirect_is_refused(no_private, monkeypatch):
    # Checked without a network: a 308 from https to http is refused before the next hop.
    calls = []

    def fake_post(url, body, headers, *, timeout, allow_private=None):
        calls.append(url)
        return webhook._Response(308, "Permanent Redirect", "http://hooks.example.test/plain", None)

    monkeypatch.setattr(webhook, "post_once", fake_post)
    result = webhook.deliver("https://hooks.example.test/hook", BODY, HEADERS)
    assert not result.ok and "https to a non-https" in result.error
    assert calls == ["https://hooks.example.test/hook"]


def test_signature_format():
    body = json.dumps({"a": 1}).encode()
    assert webhook.sign("k" * 20, "1700000000", body).startswith("sha256=")
    assert len(webhook.sign("k" * 20, "1700000000", body)) == len("sha256=") + 64
