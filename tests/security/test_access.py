"""Who may call the API, how often, and on whose objects.

- Authentication: session and token work, HTTP Basic is refused everywhere, every documented
  operation refuses an anonymous caller, and no view swaps in other authentication classes.
- Throttling: the user and anonymous rates, and the stricter `start_work` scope on the routes that
  start work (iterations POST, continuous-learning start, channel test, graduate).
- Owner scoping, generated from the OpenAPI schema: every path with an agent or channel id, every
  documented method, answers 404 for another owner's agent, iteration, refinement, version, alert,
  channel (and for one's own agent with another's nested object), and changes nothing. A route
  reachable by URL but missing from the sweep fails the test, so a new route is covered or noticed.
- Status and pinned version are read-only; live trading only through the graduation endpoint.
"""

import base64
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.forms.models import model_to_dict
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authentication import BasicAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from agents.market.models import BarImport, PriceBar
from agents.models import (
    ActivityLog,
    AgentStatus,
    LearningIteration,
    Refinement,
    StrategyVersion,
    TradingAgent,
)
from agents.services import learning
from alerts.models import AgentAlert, AlertType, Delivery, NotificationChannel, Severity
from core.errors import PermissionRefused
from graduation import services as graduation_services
from graduation.models import GraduationEvent, PaperAccount
from graduation.trading.runner import paper_tick
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tests.graduation.helpers import PAPER_LENIENT, append_bars, paper_agent
from tournaments.models import Tournament, TournamentRound
from tournaments.services.tournaments import tournament_create

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttle_history():
    # Throttle counters live in the cache; no test may inherit or leave any.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    """(METHOD, path template) of every documented operation; none found is a failure, not an empty sweep."""
    found = sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    assert found, "the OpenAPI schema documents no operation: every sweep below would test nothing"
    return found


def token_client(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


# --- a victim with one of everything, and an attacker with an agent of their own -------------------
@pytest.fixture
def world():
    victim = UserFactory(username="victim")
    attacker = UserFactory(username="mallory")
    instrument = random_walk_bars(InstrumentFactory(symbol="SECV"), n=400)
    agent = make_agent(owner=victim, instrument=instrument, name="victim-agent")
    iteration, _ = learning.iteration_run_now(agent, trigger="api")
    refinement = Refinement.objects.filter(agent=agent).order_by("id").first()
    assert refinement is not None, "the victim's iteration proposed no refinement"
    alert = AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.WARNING,
                                      message="victim alert")
    channel = NotificationChannel.objects.create(owner=victim, name="victim-channel", kind="log",
                                                 min_severity=Severity.INFO)
    Delivery.objects.create(alert=alert, channel=channel)
    mine = make_agent(owner=attacker, instrument=instrument, name="attacker-agent")
    bar_import = BarImport.objects.create(symbol=instrument.symbol, requested_by=victim, path="/nonexistent.csv")
    rival = make_agent(owner=victim, instrument=instrument, name="victim-rival")
    tournament = tournament_create(victim, name="victim-cup", agent_ids=[agent.pk, rival.pk])
    return {
        "victim": victim, "attacker": attacker, "agent": agent, "iteration": iteration, "refinement": refinement,
        "version": agent.current_version, "alert": alert, "channel": channel, "mine": mine,
        "instrument": instrument, "bar_import": bar_import, "tournament": tournament,
    }


def victim_state(world):
    """Everything the victim owns, as plain values: compared before and after each request."""
    agent, victim = world["agent"], world["victim"]
    return {
        "agent": model_to_dict(TradingAgent.objects.get(pk=agent.pk)),
        "iterations": list(LearningIteration.objects.filter(agent=agent).order_by("id").values()),
        "refinements": list(Refinement.objects.filter(agent=agent).order_by("id").values()),
        "versions": list(StrategyVersion.objects.filter(agent=agent).order_by("id").values()),
        "activity": ActivityLog.objects.filter(agent=agent).count(),
        "alerts": list(AgentAlert.objects.filter(agent=agent).order_by("id").values()),
        "channels": list(NotificationChannel.objects.filter(owner=victim).order_by("id").values()),
        "deliveries": list(Delivery.objects.filter(channel__owner=victim).order_by("id").values()),
        "graduation": GraduationEvent.objects.filter(agent=agent).count(),
        "paper": PaperAccount.objects.filter(agent=agent).count(),
        "bars": PriceBar.objects.filter(instrument=world["instrument"]).count(),
        "bar_imports": list(BarImport.objects.filter(requested_by=victim).order_by("pk").values()),
        "tournaments": list(Tournament.objects.filter(owner=victim).order_by("pk").values()),
        "rounds": TournamentRound.objects.filter(tournament__owner=victim).count(),
    }


# Paths whose ids name lab-wide objects, not anyone's: the only ones left out of the sweep.
# Instruments are visible to all; who may upload bars into one (a 403 otherwise) is tested in
# tests/agents/test_bar_upload.py.
GLOBAL_PATHS = {"/api/instruments/{id}/", "/api/instruments/{symbol}/bars/"}
# Path parameters naming an object nested under an agent: also tried under the attacker's own agent.
NESTED = {"iteration_id": "iteration", "refinement_id": "refinement", "version_id": "version", "alert_id": "alert"}


def concrete_urls(path, world):
    """The URLs to try for one path template: the victim's ids, then (for nested objects) the
    attacker's own agent with the victim's nested id. Fails on a parameter it does not know, so a new
    kind of route has to be added here rather than skipped."""
    names = re.findall(r"{(\w+)}", path)

    def fill(agent):
        values = {}
        for name in names:
            if name in ("id", "agent_id") and path.startswith("/api/learning-agents/"):
                values[name] = str(agent.pk)
            elif name == "id" and path.startswith("/api/notification-channels/"):
                values[name] = str(world["channel"].pk)
            elif name == "id" and path.startswith("/api/tournaments/"):
                values[name] = str(world["tournament"].pk)
            elif name == "agent_id" and path.startswith("/api/tournaments/"):
                values[name] = str(world["agent"].pk)  # the victim's entrant
            elif name in NESTED:
                values[name] = str(world[NESTED[name]].pk)
            elif name == "decision":
                values[name] = "approve"
            elif name == "symbol" and path.startswith("/api/instruments/"):
                values[name] = world["instrument"].symbol
            elif name == "import_id":
                values[name] = str(world["bar_import"].pk)
            else:
                raise AssertionError(f"{path}: unknown path parameter {{{name}}}: map it to the victim's object "
                                     "in tests/security/test_access.py (or list the path in GLOBAL_PATHS)")
        return path.format(**values)

    urls = [fill(world["agent"])]
    if any(name in NESTED for name in names):
        urls.append(fill(world["mine"]))
    return urls


def variants(url):
    """With and without the trailing slash, and the router's format suffix where it resolves."""
    bare = url.rstrip("/")
    out = [bare + "/", bare]
    try:
        resolve(bare + ".json")
        out.append(bare + ".json")
    except Resolver404:
        pass
    return out


def api_routes():
    """Every URL route under api/ (as ResolverMatch.route spells it): (named groups, view class)."""

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern).removeprefix("^") if prefix else str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
                yield route, set(pattern.pattern.regex.groupindex), view

    return {route: (groups, view) for route, groups, view in walk(get_resolver().url_patterns, "")
            if route.startswith("api/")}


def test_every_route_with_an_owned_id_answers_404_to_another_owner_and_changes_nothing(world, openapi):
    client = token_client(world["attacker"])
    before = victim_state(world)
    hit_routes, tried, wrong = set(), 0, []
    for method, path in operations(openapi):
        if "{" not in path or path in GLOBAL_PATHS:
            continue
        for url in concrete_urls(path, world):
            for variant in variants(url):
                hit_routes.add(resolve(variant).route)
                resp = client.generic(method, variant, "{}", content_type="application/json")
                tried += 1
                if resp.status_code != 404:
                    wrong.append(f"{method} {variant} -> {resp.status_code} {resp.content[:200]!r}")
                if victim_state(world) != before:
                    pytest.fail(f"{method} {variant} changed the victim's data")
    assert not wrong, "another owner's objects must be a 404:\n" + "\n".join(wrong)
    assert tried >= 90  # 45 operations x 2 spellings, plus nested objects under the own agent

    # Every route that captures an id is in the sweep: one hidden from the schema fails here.
    unswept = {
        route for route, (groups, _view) in api_routes().items()
        if groups and route not in hit_routes and not route.startswith("api/instruments/")
    }
    assert not unswept, f"routes with an id that the schema-driven sweep never reached: {sorted(unswept)}"


def test_undocumented_methods_on_another_owners_objects_do_nothing(world, openapi):
    client = token_client(world["attacker"])
    before = victim_state(world)
    documented, tried = {}, 0
    for method, path in operations(openapi):
        documented.setdefault(path, set()).add(method)
    for path, methods in documented.items():
        if "{" not in path or path in GLOBAL_PATHS:
            continue
        for url in concrete_urls(path, world):
            for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods:
                resp = client.generic(method, url, "{}", content_type="application/json")
                # 405: DRF refuses a method the view lacks before it looks the object up.
                assert resp.status_code == 405, (method, url, resp.status_code)
                tried += 1
    assert victim_state(world) == before
    assert tried >= 100  # 143 when written: each owned path times the methods it lacks


def test_lists_and_filters_never_show_another_owners_objects(world):
    client = token_client(world["attacker"])
    agent, alert = world["agent"], world["alert"]
    agents = client.get("/api/learning-agents/").json()["results"]
    assert [a["id"] for a in agents] == [str(world["mine"].pk)]
    assert client.get(f"/api/learning-agents/?search={agent.name}").json()["results"] == agents
    for query in ("", "?acknowledged=true", "?acknowledged=false", f"?agent={agent.pk}"):
        assert client.get(f"/api/learning-agents/alerts/{query}").json()["results"] == [], query
    assert client.get("/api/notification-channels/").json()["results"] == []
    # Bulk acknowledgement: by id the victim's alert is "not found", by filter it is not counted.
    resp = client.post("/api/learning-agents/alerts/acknowledge", {"ids": [alert.pk]}, format="json")
    assert resp.status_code == 200 and resp.json() == {"acknowledged": 0, "not_found": [alert.pk]}
    for body in ({"agent": str(agent.pk)}, {"all": True}):
        resp = client.post("/api/learning-agents/alerts/acknowledge", body, format="json")
        assert resp.status_code == 200 and resp.json()["acknowledged"] == 0, body
    alert.refresh_from_db()
    assert alert.acknowledged is False


def test_the_owner_reaches_the_same_routes(world):
    # The control of the sweep: the 404s above come from scoping, not from bad ids.
    client = token_client(world["victim"])
    base = f"/api/learning-agents/{world['agent'].pk}"
    for path in ("", "/iterations", f"/iterations/{world['iteration'].pk}", "/refinements", "/versions",
                 "/alerts", f"/alerts/{world['alert'].pk}", "/graduation/eligibility", "/paper"):
        assert client.get(base + path).status_code == 200, path
    channel = f"/api/notification-channels/{world['channel'].pk}"
    assert client.get(channel).status_code == 200
    assert client.get(channel + "/deliveries").status_code == 200


# --- authentication ---------------------------------------------------------------------------
def test_every_documented_operation_refuses_an_anonymous_caller(world, openapi):
    client = APIClient()
    documented = operations(openapi)
    assert len(documented) >= 45
    for method, path in documented:
        url = concrete_urls(path, world)[0] if "{" in path and path not in GLOBAL_PATHS else path
        url = url.replace("{id}", "1")
        resp = client.generic(method, url, "{}", content_type="application/json")
        assert resp.status_code == 403, (method, url, resp.status_code)
    for operation in (op for item in openapi["paths"].values() for op in item.values() if isinstance(op, dict)):
        assert {} not in operation.get("security", [{}]), operation["operationId"]


def test_schema_documents_only_session_and_token_authentication(openapi):
    assert set(openapi["components"]["securitySchemes"]) == {"cookieAuth", "tokenAuth"}


# The OpenAPI document and its viewer: public (drf-spectacular's SERVE_PERMISSIONS), no data in them.
PUBLIC_ROUTES = {"api/schema/", "api/docs/"}


def test_no_view_allows_basic_auth_or_drops_the_login_requirement():
    seen = 0
    for route, (_groups, view) in api_routes().items():
        if view is None or route in PUBLIC_ROUTES:
            continue
        seen += 1
        assert BasicAuthentication not in view.authentication_classes, route
        assert any(issubclass(p, IsAuthenticated) for p in view.permission_classes), route
    assert seen >= 30


def test_basic_auth_is_refused_even_with_the_right_password(world):
    user = world["attacker"]
    assert user.check_password(PASSWORD)
    basic = base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    resp = APIClient().get("/api/learning-agents/", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert resp.status_code == 403  # an anonymous caller: BasicAuthentication is not installed
    assert "basic" not in resp.get("WWW-Authenticate", "").lower()


def test_token_auth_works_and_a_bad_token_is_refused(world):
    assert token_client(world["attacker"]).get("/api/learning-agents/").status_code == 200
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    resp = bad.get("/api/learning-agents/")
    # 403 rather than 401: DRF answers 401 only when the first class (session) names a scheme.
    assert resp.status_code == 403 and resp.json()["detail"] == "Invalid token."


def test_session_auth_works_and_needs_the_csrf_token_to_write(world):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="mallory", password=PASSWORD)
    assert client.get("/api/learning-agents/").status_code == 200
    url = f"/api/learning-agents/{world['mine'].pk}/"
    resp = client.patch(url, {"description": "changed"}, format="json")
    assert resp.status_code == 403 and "CSRF" in resp.json()["detail"]
    client.get("/admin/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    resp = client.patch(url, {"description": "changed"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert resp.status_code == 200 and resp.json()["description"] == "changed"


def test_token_auth_needs_no_csrf_token(world):
    client = token_client(world["attacker"])
    client.handler.enforce_csrf_checks = True
    resp = client.patch(f"/api/learning-agents/{world['mine'].pk}/", {"description": "x"}, format="json")
    assert resp.status_code == 200


# --- throttling -------------------------------------------------------------------------------
@pytest.fixture
def rates(monkeypatch):
    """Tiny rates; DRF reads them from this class attribute (bound when DRF was imported)."""
    table = {"anon": "2/min", "user": "1000/min", "start_work": "2/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", table)
    return table


def _statuses(send, n):
    return [send().status_code for _ in range(n)]


def test_start_work_routes_use_the_stricter_scope(world, rates):
    mine = world["mine"]
    channel = NotificationChannel.objects.create(owner=world["attacker"], name="mine", kind="log",
                                                 min_severity=Severity.INFO)
    client = token_client(world["attacker"])
    base = f"/api/learning-agents/{mine.pk}"
    routes = {
        "iterations POST": lambda: client.post(base + "/iterations"),
        "continuous start": lambda: client.post(base + "/continuous-learning/start"),
        "channel test": lambda: client.post(f"/api/notification-channels/{channel.pk}/test"),
        "graduate": lambda: client.post(base + "/graduate", {}, format="json"),
    }
    for name, send in routes.items():
        cache.clear()
        codes = _statuses(send, 3)
        assert 429 not in codes[:2] and codes[2] == 429, (name, codes)
        # Reading is not starting work: the same user may still read.
        assert client.get(base + "/iterations").status_code == 200, name


def test_reads_and_settings_are_not_in_the_start_work_scope(world, rates):
    client = token_client(world["attacker"])
    base = f"/api/learning-agents/{world['mine'].pk}"
    for send in (lambda: client.get(base + "/iterations"), lambda: client.get(base + "/graduation/eligibility"),
                 lambda: client.post(base + "/auto-approve/enable"), lambda: client.post(base + "/demote", {})):
        assert 429 not in _statuses(send, 4)


def test_the_user_rate_applies_to_every_route(world, rates):
    rates["user"] = "3/min"
    client = token_client(world["attacker"])
    assert _statuses(lambda: client.get("/api/learning-agents/"), 4) == [200, 200, 200, 429]
    resp = client.get("/api/strategies/")
    assert resp.status_code == 429 and "Retry-After" in resp


def test_the_anonymous_rate_applies_where_no_login_is_needed(rates):
    # The schema is the one public route; everything else refuses an anonymous caller first.
    codes = _statuses(lambda: APIClient().get("/api/schema/"), 3)
    assert codes == [200, 200, 429]


# --- status and pinned version are read-only; live trading only through graduation ---------------
READ_ONLY_BODIES = [
    {"status": "live_trading"}, {"status": "paper_trading"}, {"current_version": "victim"}, {"owner": "victim"},
    {"instrument": "SECV"}, {"strategy_template": "rsi_reversion"}, {"status": "live_trading", "name": "renamed"},
]


@pytest.mark.parametrize(
    ("body", "fmt"),
    [(body, fmt) for body in READ_ONLY_BODIES for fmt in ("json", "multipart")]
    + [({"current_version": {"id": 1, "number": 1, "params": {}}}, "json")],
)
def test_status_and_version_cannot_be_patched(world, body, fmt):
    mine = world["mine"]
    if body.get("current_version") == "victim":
        body = {"current_version": world["version"].pk}  # another agent's version: never this one's
    before = model_to_dict(TradingAgent.objects.get(pk=mine.pk))
    resp = token_client(world["attacker"]).patch(f"/api/learning-agents/{mine.pk}/", body, format=fmt)
    assert resp.status_code == 400, resp.content
    named = set(body) - {"name"}
    assert named <= set(resp.json()), resp.json()
    assert model_to_dict(TradingAgent.objects.get(pk=mine.pk)) == before


def test_an_agent_cannot_be_created_in_another_status(world):
    client = token_client(world["attacker"])
    body = {"name": "sneaky", "instrument": "SECV", "strategy_template": "sma_crossover", "status": "live_trading"}
    resp = client.post("/api/learning-agents/", body, format="json")
    assert resp.status_code == 400 and "status" in resp.json()
    assert not TradingAgent.objects.filter(name="sneaky").exists()


def test_no_serializer_or_admin_form_writes_status_or_version():
    from agents.api.serializers import AgentSerializer
    from console.agent_admin import TradingAgentAdmin

    read_only = set(AgentSerializer.Meta.read_only_fields)
    assert {"status", "current_version", "owner"} <= read_only
    assert {"status", "current_version"} <= set(TradingAgentAdmin.readonly_fields)


@pytest.fixture
def paper_ready(settings):
    settings.LAB_PAPER_MIN_BARS = 20
    settings.LAB_PAPER_MIN_TRADES = 1
    # The paper evidence itself (PSR, minimum track record) is tested in tests/graduation; here the
    # record only has to let the access rules be the thing that decides.
    agent = paper_agent(PAPER_LENIENT, params={"fast": 3, "slow": 8})
    append_bars(agent.instrument, 40, seed=9)
    paper_tick()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    return agent


def test_live_trading_only_through_graduate_with_permission_and_confirmation(paper_ready):
    agent, owner = paper_ready, paper_ready.owner
    url = f"/api/learning-agents/{agent.pk}"

    def status():
        agent.refresh_from_db()
        return agent.status

    # Not by editing the agent, not by staff rank, not without the permission.
    assert token_client(owner).patch(url, {"status": "live_trading"}, format="json").status_code == 400
    # Staff rank does not even show another owner's agent (agents.selectors).
    staff = UserFactory(username="staff-no-perm", is_staff=True)
    resp = token_client(staff).post(url + "/graduate", {"reason": "r", "confirm": True}, format="json")
    assert resp.status_code == 404
    resp = token_client(owner).post(url + "/graduate", {"reason": "r", "confirm": True}, format="json")
    assert resp.status_code == 403
    # Never automatically, even for a permitted owner.
    owner.user_permissions.add(Permission.objects.get(codename="approve_live_trading"))
    owner = type(owner).objects.get(pk=owner.pk)
    with pytest.raises(PermissionRefused):
        graduation_services.agent_graduate(agent, actor=owner, reason="r", confirm=True, automatic=True)
    # The permission alone is not enough: an explicit confirmation and a reason.
    resp = token_client(owner).post(url + "/graduate", {"reason": "r", "confirm": "false"}, format="json")
    assert resp.status_code == 400 and "confirm" in resp.json()
    resp = token_client(owner).post(url + "/graduate", {"confirm": True}, format="json")
    assert resp.status_code == 400 and "reason" in resp.json()
    assert status() == AgentStatus.PAPER_TRADING
    resp = token_client(owner).post(url + "/graduate", {"reason": "solid paper record", "confirm": True},
                                    format="json")
    assert resp.status_code == 201, resp.content
    assert status() == AgentStatus.LIVE_TRADING
