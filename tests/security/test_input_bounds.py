"""Every JSON input has bounds: bad values are a 400 naming the field, and nothing changes.

The inputs: approval thresholds, graduation criteria, graduation switches, strategy params and agent
settings (create and edit), notification channel settings (create and edit), the bulk alert
acknowledgement, the schedule, and the free-text reasons. For each: out-of-range values, wrong types,
unknown keys, NaN / Infinity tokens, numbers beyond a float, huge integers, deep nesting, a body that
is not an object, and oversized bodies (413 before any parser reads them).
"""

import json
import socket

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from agents.models import ActivityLog, LearningIteration, Refinement, StrategyVersion, TradingAgent
from agents.services import learning
from alerts.models import AgentAlert, AlertType, NotificationChannel, Severity
from core.parsers import MAX_DEPTH, MAX_INT_DIGITS
from graduation.models import GraduationEvent
from graduation.services import MAX_REASON
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_private_targets(settings):
    settings.LAB_WEBHOOK_ALLOW_PRIVATE = False


@pytest.fixture
def lab():
    owner = UserFactory(username="owner")
    random_walk_bars(InstrumentFactory(symbol="BND"), n=200)
    agent = make_agent(owner=owner, instrument=InstrumentFactory(symbol="BND"), name="bounded")
    alert = AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.WARNING,
                                      message="open")
    channel = NotificationChannel.objects.create(owner=owner, name="ops", kind="log", min_severity=Severity.INFO)
    client = APIClient()
    client.force_authenticate(owner)
    return {"owner": owner, "agent": agent, "alert": alert, "channel": channel, "client": client}


def state(lab):
    agent = lab["agent"]
    return {
        "agents": [model_to_dict(a) for a in TradingAgent.objects.order_by("pk")],
        "versions": StrategyVersion.objects.count(),
        "iterations": LearningIteration.objects.count(),
        "refinements": list(Refinement.objects.filter(agent=agent).order_by("id").values("id", "status")),
        "activity": ActivityLog.objects.count(),
        "alerts": list(AgentAlert.objects.order_by("id").values("id", "acknowledged", "acknowledged_at")),
        "channels": list(NotificationChannel.objects.order_by("id").values()),
        "graduation": GraduationEvent.objects.count(),
    }


# name: (method, path, a valid body, a numeric field to attack generically)
ENDPOINTS = {
    "thresholds": ("put", "{agent}/approval-thresholds", {
        "min_win_rate": 0.5, "min_sharpe_ratio": 0.5, "min_signals": 5, "min_total_return": 0.0,
        "require_improvement": True}, "min_win_rate"),
    "thresholds-patch": ("patch", "{agent}/approval-thresholds", {"min_signals": 7}, "min_signals"),
    "criteria": ("put", "{agent}/graduation/criteria", {"min_iterations": 5}, "min_iterations"),
    "switches": ("patch", "{agent}/graduation/settings", {"auto_graduate": True}, "auto_graduate"),
    "agent-create": ("post", "/api/learning-agents/", {
        "name": "new", "instrument": "BND", "strategy_template": "sma_crossover", "params": {"fast": 10}},
        "fee_bps"),
    "agent-params": ("post", "/api/learning-agents/", {
        "name": "new", "instrument": "BND", "strategy_template": "sma_crossover", "params": {"fast": 10}},
        "params.fast"),
    "agent-edit": ("patch", "{agent}", {"fee_bps": 2.0}, "fee_bps"),
    "channel-create": ("post", "/api/notification-channels/", {"name": "new", "kind": "log"},
                       "rate_limit_per_minute"),
    "channel-edit": ("patch", "{channel}", {"rate_limit_per_minute": 5}, "rate_limit_per_minute"),
    "bulk-ack": ("post", "/api/learning-agents/alerts/acknowledge", {"ids": ["{alert}"]}, "ids.0"),
    "schedule": ("put", "{agent}/schedule", {"cron": "0 9 * * 1", "timezone": "UTC"}, "cron"),
}


# The POSTs that create a row answer 201; every other valid body is a 200.
CREATES = {"agent-create", "agent-params", "channel-create"}
# The bodies whose every field may be left out (a PATCH, or a PUT of optional settings): {} is valid.
ALL_OPTIONAL = {"agent-edit", "channel-edit", "criteria", "switches", "thresholds", "thresholds-patch"}


def url_of(lab, path):
    agent_url = f"/api/learning-agents/{lab['agent'].pk}"
    return path.format(agent=agent_url, channel=f"/api/notification-channels/{lab['channel'].pk}")


def with_value(body, dotted, raw_json):
    """The body as JSON text with `dotted` (e.g. params.fast or ids.0) set to the raw JSON `raw_json`."""
    marker = "__VALUE_MARKER__"
    data = json.loads(json.dumps(body))
    keys = dotted.split(".")
    target = data
    for key in keys[:-1]:
        target = target[int(key) if isinstance(target, list) else key]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = marker
    else:
        target[last] = marker
    return json.dumps(data).replace(f'"{marker}"', raw_json)


def send(lab, name, raw):
    method, path, _body, _field = ENDPOINTS[name]
    raw = raw.replace('"{alert}"', str(lab["alert"].pk))
    return getattr(lab["client"], method)(url_of(lab, path), data=raw, content_type="application/json")


def valid_json(lab, name):
    return json.dumps(ENDPOINTS[name][2])


def assert_refused(lab, name, raw, field, before):
    resp = send(lab, name, raw)
    assert resp.status_code == 400, (name, raw[:200], resp.status_code, resp.content[:300])
    body = resp.json()
    if field is not None:
        top = field.split(".")[0]
        assert field in body or top in body, (name, field, body)
    assert state(lab) == before, f"{name}: a refused request changed something"
    return body


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_each_valid_body_is_accepted(lab, name):
    # The control: the refusals below come from the bad value, not from a broken base body.
    resp = send(lab, name, valid_json(lab, name))
    assert resp.status_code == (201 if name in CREATES else 200), (name, resp.content)


GENERIC_BAD = {
    "nan-token": "NaN",
    "infinity-token": "Infinity",
    "minus-infinity-token": "-Infinity",
    "beyond-float": "1e400",
    "huge-float": "1e300",
    "huge-int": "1" + "0" * 30,
    "enormous-int": "9" * 5000,
    "nested-object": '{"value": 1}',
    "nested-list": "[1, 2]",
    "deeply-nested": "[" * (MAX_DEPTH + 5) + "1" + "]" * (MAX_DEPTH + 5),
    "string": '"12"',
}
# Serializer-typed inputs that also take forms (the browsable API): DRF's unambiguous string
# coercions are accepted there. The JSON-only inputs (thresholds, criteria, switches, params) are strict.
FORM_COERCED = {"agent-create", "agent-edit", "channel-create", "channel-edit", "bulk-ack", "schedule"}
PARSE_LEVEL = {"nan-token", "infinity-token", "minus-infinity-token", "beyond-float", "enormous-int"}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_generic_bad_values_are_refused_naming_the_field(lab, name):
    field = ENDPOINTS[name][3]
    before = state(lab)
    for kind, raw in GENERIC_BAD.items():
        if kind == "string" and name in FORM_COERCED:
            continue  # "12" -> 12 by design: test_form_style_strings_are_coerced_but_booleans_are_not_numbers
        body = assert_refused(lab, name, with_value(ENDPOINTS[name][2], field, raw),
                              None if kind == "deeply-nested" else field, before)
        if kind in PARSE_LEVEL:
            # Named by the parser itself, with the full path (params.fast, ids.0).
            assert field in body, (kind, body)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_unknown_keys_are_refused_by_name(lab, name):
    body = dict(ENDPOINTS[name][2], surprise_field=1)
    assert_refused(lab, name, json.dumps(body), "surprise_field", state(lab))


@pytest.mark.parametrize("name", ["agent-params"])
def test_unknown_params_are_refused_by_name(lab, name):
    body = json.loads(json.dumps(ENDPOINTS[name][2]))
    body["params"]["surprise"] = 1
    assert_refused(lab, name, json.dumps(body), "params.surprise", state(lab))


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_body_that_is_not_an_object_is_refused(lab, name):
    before = state(lab)
    for raw in ("[]", "[{}]", '"text"', "1", "null", "true", "{", '{"a": }', "\x00", "\ufeff{}"):
        resp = send(lab, name, raw)
        assert resp.status_code == 400, (name, raw, resp.status_code, resp.content[:300])
    assert state(lab) == before


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_an_empty_body_is_an_empty_object(lab, name):
    # DRF reads no body as {}: a 400 where {} is incomplete, else the same answer as {}.
    resp = send(lab, name, "")
    assert resp.status_code == (200 if name in ALL_OPTIONAL else 400), (name, resp.status_code, resp.content[:300])
    assert resp.status_code == send(lab, name, "{}").status_code


def test_form_style_strings_are_coerced_but_booleans_are_not_numbers(lab):
    client, url = lab["client"], url_of(lab, "{agent}")
    resp = client.patch(url, {"fee_bps": "12"}, format="json")
    assert resp.status_code == 200 and resp.json()["fee_bps"] == 12.0
    before = state(lab)
    for field in ("fee_bps", "slippage_bps", "test_fraction", "initial_capital", "convergence_threshold",
                  "candidates_per_iteration", "random_seed"):
        resp = client.patch(url, {field: True}, format="json")
        assert resp.status_code == 400 and field in resp.json(), (field, resp.content[:300])
    resp = client.patch(url_of(lab, "{channel}"), {"rate_limit_per_minute": True}, format="json")
    assert resp.status_code == 400 and "rate_limit_per_minute" in resp.json()
    assert state(lab) == before


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 999, 5000, 100_000])
def test_deep_nesting_is_a_400_at_any_depth(lab, depth):
    # Around a thousand levels Python's json recursed into a RecursionError: a 500 before the fix.
    before = state(lab)
    for raw in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        resp = send(lab, "thresholds", raw)
        assert resp.status_code == 400 and "nested deeper" in resp.json()["detail"], resp.content[:200]
    assert state(lab) == before


def test_nesting_up_to_the_limit_is_parsed(lab):
    # Depth MAX_DEPTH is the parser's; the endpoint then refuses the value by name.
    value = "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2)
    body = assert_refused(lab, "criteria", with_value({"min_iterations": 5}, "min_iterations", value),
                          "min_iterations", state(lab))
    assert "nested" not in json.dumps(body)


def test_the_parser_names_every_non_finite_value_at_once(lab):
    raw = '{"min_win_rate": NaN, "min_sharpe_ratio": Infinity, "min_signals": 5, "min_total_return": 1e999,' \
          ' "require_improvement": true}'
    body = assert_refused(lab, "thresholds", raw, None, state(lab))
    assert set(body) == {"min_win_rate", "min_sharpe_ratio", "min_total_return"}
    assert "finite" in body["min_win_rate"][0]


def test_integers_longer_than_the_limit_are_named(lab):
    raw = with_value(ENDPOINTS["agent-edit"][2], "fee_bps", "1" * (MAX_INT_DIGITS + 1))
    body = assert_refused(lab, "agent-edit", raw, "fee_bps", state(lab))
    assert f"{MAX_INT_DIGITS} digits" in body["fee_bps"][0]


# Per-field rules: (endpoint, field, bad raw JSON values).
FIELD_CASES = [
    ("thresholds", "min_win_rate", ["1.5", "-0.1", '"0.5"', "true", "null"]),
    ("thresholds", "min_sharpe_ratio", ["10.5", "-11", "false"]),
    ("thresholds", "min_signals", ["-1", "2.5", "1000001", '"5"']),
    ("thresholds", "min_total_return", ["-1.01", "[]"]),
    ("thresholds", "require_improvement", ['"yes"', "1", "null"]),
    ("thresholds-patch", "max_drawdown", ["0", "1.01", '"x"', "-0.5"]),
    ("criteria", "min_iterations", ["0", "100001", "2.5", "true", "null"]),
    ("criteria", "consistency_window", ["0", "51"]),
    ("criteria", "max_drawdown", ["0", "1.5"]),
    ("criteria", "min_probabilistic_sharpe", ["1.5", "-0.1", '"high"']),
    ("switches", "auto_graduate", ['"yes"', "1", "null", "0"]),
    ("agent-create", "name", ['""', '"' + "x" * 121 + '"', "null"]),
    ("agent-create", "instrument", ['"NOPE"', "5", "null"]),
    ("agent-create", "strategy_template", ['"astrology"', "[]", "null"]),
    ("agent-create", "fee_bps", ["-1", "1000.5", '"x"', "true", "false"]),
    ("agent-create", "test_fraction", ["0.01", "0.99"]),
    ("agent-create", "candidates_per_iteration", ["0", "33", "2.5"]),
    ("agent-create", "random_seed", ["-1", "2147483648"]),
    ("agent-create", "max_iterations_per_day", ["0", "1001"]),
    ("agent-create", "min_iteration_gap_minutes", ["-1", "10081"]),
    ("agent-create", "convergence_threshold", ["-0.1", "1.5"]),
    ("agent-create", "initial_capital", ["0", "1e13"]),
    ("agent-create", "refiner", ['"oracle"', "1"]),
    ("agent-create", "params", ['"fast=10"', "[10]"]),
    ("agent-params", "params.fast", ["1000", "0", '"ten"', "true", "10.5"]),
    ("agent-params", "params.long_only", ['"yes"', "1"]),
    ("agent-params", "params.stop_loss", ["0.9", "-0.1"]),
    ("agent-edit", "test_fraction", ["0.6", '"half"']),
    ("agent-edit", "name", ['""', '"' + "y" * 121 + '"']),
    ("agent-edit", "objective", ['"luck"']),
    ("channel-create", "rate_limit_per_minute", ["0", "601", "2.5", '"five"', "true"]),
    ("channel-create", "enabled", ['"maybe"', "2", "null"]),
    ("channel-create", "kind", ['"sms"', "1"]),
    ("channel-create", "name", ['""', '"' + "n" * 121 + '"']),
    ("channel-create", "min_severity", ['"LOUD"', "1"]),
    ("channel-create", "alert_types", ['["NOPE"]', "[1]", '"ERROR"', json.dumps(["ERROR"] * 21)]),
    ("channel-create", "target", ['"something"', "5"]),
    ("channel-edit", "secret", ['"short"', '"' + "s" * 201 + '"']),
    ("bulk-ack", "ids", ["[0]", "[-1]", "[9223372036854775808]", '["x"]', '"1"', "[null]", "[]",
                         json.dumps(list(range(1, 1002)))]),
    ("schedule", "cron", ['"61 * * * *"', '"' + "*" * 201 + '"', '["* * * * *"]', '""']),
    ("schedule", "timezone", ['"Mars/Olympus"', '"' + "z" * 101 + '"']),
]


@pytest.mark.parametrize(("name", "field", "raws"), FIELD_CASES, ids=[f"{n}-{f}" for n, f, _ in FIELD_CASES])
def test_out_of_bounds_and_wrong_types_are_refused_naming_the_field(lab, name, field, raws):
    before = state(lab)
    for raw in raws:
        assert_refused(lab, name, with_value(ENDPOINTS[name][2], field, raw), field, before)


def test_bulk_ack_filters_are_typed_and_bounded(lab):
    before = state(lab)
    for body, field in (({"all": "maybe"}, "all"), ({"type": ["NOPE"]}, "type"), ({"since": "yesterday"}, "since"),
                        ({"agent": "not-a-uuid"}, "agent"), ({"min_severity": "LOUD"}, "min_severity"),
                        ({"ids": [1], "all": True}, "ids"), ({}, "ids")):
        assert_refused(lab, "bulk-ack", json.dumps(body), field, before)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("{agent}/graduate", {"reason": "r" * (MAX_REASON + 1)}, "reason"),
        ("{agent}/graduate", {"confirm": "maybe"}, "confirm"),
        ("{agent}/demote", {"reason": "r" * (MAX_REASON + 1)}, "reason"),
        ("{agent}/continuous-learning/stop", {"reason": "r" * 301}, "reason"),
        ("{agent}/refinements/apply", {"reason": "r" * 1001}, "reason"),
        ("{agent}/refinements/{refinement}/approve", {"reason": "r" * 1001}, "reason"),
        ("{agent}/auto-learn/enable", {"cron": "c" * 201}, "cron"),
    ],
)
def test_free_text_is_bounded(lab, path, body, field):
    if "{refinement}" in path:
        learning.iteration_run_now(lab["agent"], trigger="api")
        path = path.replace("{refinement}", str(Refinement.objects.filter(agent=lab["agent"]).first().pk))
    before = state(lab)
    url = url_of(lab, path)
    resp = lab["client"].post(url, body, format="json")
    assert resp.status_code == 400 and field in resp.json(), resp.content[:300]
    assert state(lab) == before


# --- oversized bodies --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_an_oversized_body_is_413_before_parsing(lab, name, settings):
    before = state(lab)
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 1_000_000  # LAB_MAX_BODY_BYTES default
    padded = dict(ENDPOINTS[name][2], padding="x" * 1_000_001)
    resp = send(lab, name, json.dumps(padded))
    assert resp.status_code == 413, (name, resp.status_code)
    assert "LAB_MAX_BODY_BYTES" in resp.json()["detail"]
    assert state(lab) == before


def test_the_limit_is_the_setting_and_applies_to_every_content_type(lab, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    client, url = lab["client"], url_of(lab, "{agent}")
    at_limit = json.dumps({"description": "d" * (2000 - len('{"description": ""}'))})
    assert len(at_limit) == 2000
    assert client.patch(url, data=at_limit, content_type="application/json").status_code == 200
    over = json.dumps({"description": "d" * 2000})
    assert client.patch(url, data=over, content_type="application/json").status_code == 413
    assert client.patch(url, {"description": "d" * 2500}, format="multipart").status_code == 413
    form = "description=" + "d" * 2500
    assert client.patch(url, data=form, content_type="application/x-www-form-urlencoded").status_code == 413
    # A declared length is enough: the body is never read.
    resp = client.generic("PATCH", url, "{}", content_type="application/json", CONTENT_LENGTH="10000000")
    assert resp.status_code == 413


def test_oversized_bodies_are_refused_before_authentication():
    # No work for an anonymous caller either: the size is checked before any view code.
    resp = APIClient().post("/api/learning-agents/", data="x" * 1_000_001, content_type="application/json")
    assert resp.status_code == 413


# --- webhook targets: the variants the SSRF tests (tests/alerts/test_ssrf.py) do not try -------------
@pytest.fixture
def fake_dns(monkeypatch):
    table = {
        "metadata.example.test": ["169.254.169.254"],
        "cgnat.example.test": ["100.64.0.1"],
        "mapped.example.test": ["::ffff:10.0.0.1"],
        "mapped-metadata.example.test": ["::ffff:169.254.169.254"],
        "loopback6.example.test": ["::1"],
    }

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port or 443, 0, 0)) if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 443))
            for a in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "target",
    [
        "https://metadata.example.test/latest/meta-data/",
        "https://cgnat.example.test/hook",
        "https://mapped.example.test/hook",
        "https://mapped-metadata.example.test/hook",
        "https://loopback6.example.test/hook",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:100.64.0.1]/hook",
        "http://100.127.255.254/hook",
    ],
)
def test_webhook_targets_resolving_to_non_public_addresses_are_refused_by_the_api(lab, fake_dns, target):
    before = state(lab)
    for method, path in (("post", "/api/notification-channels/"), ("patch", "{channel}")):
        resp = getattr(lab["client"], method)(url_of(lab, path), {"name": "hook", "kind": "webhook",
                                                                  "target": target}, format="json")
        assert resp.status_code == 400 and "target" in resp.json(), (method, target, resp.content[:300])
    assert state(lab) == before


# --- query parameters: odd but well-formed values are answered, never a 500 ------------------------
# value: the answer. A moment that exists in UTC is answered; one that does not is a 400.
ODD_DATETIMES = {
    "0486-04-05T19:17:35-17:05": 200,  # PostgreSQL refuses offsets beyond +-15:59: a 500 there before the fix
    "2024-05-01T12:00:00+23:59": 200,
    "0001-01-01T00:00:00+01:00": 400,  # UTC would be before year 1
    "9999-12-31T23:59:59-01:00": 400,  # UTC would be after year 9999
    "2024-13-01T00:00:00": 400,  # well-formed, impossible: parse_datetime raises ValueError
    "2024-02-30T00:00:00Z": 400,
    "yesterday": 400,
}


@pytest.mark.parametrize(("value", "expected"), ODD_DATETIMES.items())
def test_datetime_query_parameters_never_fail(lab, value, expected):
    client, agent = lab["client"], f"/api/learning-agents/{lab['agent'].pk}"
    for url, param in ((f"{agent}/iterations", "since"), (f"{agent}/iterations", "until"),
                       (f"{agent}/activity", "since"), (f"{agent}/alerts", "until"),
                       ("/api/learning-agents/alerts", "since"), (f"{agent}/graduation/version-at", "at")):
        resp = client.get(url, {param: value})
        assert resp.status_code == expected, (url, param, value, resp.status_code)
    resp = client.post("/api/learning-agents/alerts/acknowledge", {"since": value}, format="json")
    assert resp.status_code == expected, (value, resp.status_code)


def test_the_version_at_answer_is_in_utc(lab):
    resp = lab["client"].get(f"/api/learning-agents/{lab['agent'].pk}/graduation/version-at",
                             {"at": "2024-05-01T12:00:00-17:05"})
    assert resp.status_code == 200 and resp.json()["at"] == "2024-05-02T05:05:00Z"
    resp = lab["client"].get(f"/api/learning-agents/{lab['agent'].pk}/graduation/version-at",
                             {"at": "2024-13-01T00:00:00"})
    assert resp.status_code == 400 and "at" in resp.json()


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("{agent}/paper", {"points": "1" + "0" * 30}, 400),  # above the declared maximum: refused, not capped
        ("{agent}/paper", {"fills": "-5"}, 400), ("{agent}/paper", {"points": "x"}, 400),
        ("{agent}/iterations", {"page_size": "1" + "0" * 30}, 400),  # over the maximum page size
        ("{agent}/iterations", {"page": "1" + "0" * 30}, 404),  # a page past the last one
        ("{agent}/iterations", {"status": "x" * 5000}, 400),
        ("/api/learning-agents/", {"ordering": "-owner__password"}, 400),
        ("/api/learning-agents/", {"status": "\x00"}, 400),
        ("/api/learning-agents/alerts", {"agent": "not-a-uuid"}, 400),
        ("{channel}/deliveries", {"status": "nope"}, 400),
        ("/api/learning-agents/alerts", {"type": ["ERROR"] * 500}, 200),  # a valid choice, repeated
    ],
)
def test_odd_query_parameters_never_fail(lab, path, params, expected):
    resp = lab["client"].get(url_of(lab, path), params)
    assert resp.status_code == expected, (path, params, resp.status_code)
