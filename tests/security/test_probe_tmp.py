import json
import pytest
from rest_framework.test import APIClient
from tests.factories import UserFactory, make_agent

pytestmark = pytest.mark.django_db

def test_probe():
    import time
    user = UserFactory()
    t = time.time()
    agent = make_agent(owner=user)
    print("make_agent", time.time() - t)
    from agents.services import learning
    t = time.time()
    it, _ = learning.iteration_run_now(agent, trigger="api")
    print("iteration", time.time() - t, it.status)
    c = APIClient(); c.force_authenticate(user)
    base = f"/api/learning-agents/{agent.pk}"
    def send(method, path, raw, ct="application/json"):
        r = getattr(c, method)(path, data=raw, content_type=ct)
        print(method, path, raw[:80] if isinstance(raw, str) else len(raw), "->", r.status_code, getattr(r, "data", r.content[:200]))
    send("put", base + "/approval-thresholds", '{"min_win_rate": NaN}')
    send("put", base + "/approval-thresholds", '{"min_win_rate": 1e400}')
    send("put", base + "/approval-thresholds", '{"min_win_rate": ' + "9" * 5000 + '}')
    send("put", base + "/approval-thresholds", "[" * 100000 + "]" * 100000)
    send("put", base + "/approval-thresholds", '{"a":' * 5000 + "1" + "}" * 5000)
    send("put", base + "/graduation/criteria", '{"min_iterations": {"a": [1]}}')
    send("put", base + "/approval-thresholds", json.dumps({"pad": "x" * 2_000_000}))
    send("post", "/api/learning-agents", json.dumps({"name": "x", "params": {"fast": "x" * 2_000_000}}))
    send("patch", base, json.dumps({"fee_bps": 1e400}))
    send("patch", base, '{"fee_bps": Infinity}')
    send("patch", base, json.dumps({"random_seed": 10**30}))
    send("post", "/api/learning-agents", json.dumps({"name": "y", "instrument": agent.instrument.symbol, "strategy_template": "sma_crossover", "params": {"fast": 10**30}}))
    send("post", "/api/learning-agents", json.dumps({"name": "y", "instrument": agent.instrument.symbol, "strategy_template": "sma_crossover", "params": {"fast": 10**30}, "random_seed": 10**40}))
    send("post", "/api/learning-agents/alerts/acknowledge", json.dumps({"ids": [10**30]}))
    send("post", "/api/learning-agents/alerts/acknowledge", json.dumps({"ids": [1], "bogus": 1}))
    send("post", "/api/notification-channels", json.dumps({"name": "n", "kind": "log", "rate_limit_per_minute": 1e400}))
    send("post", "/api/notification-channels", '{"name": "n", "kind": "log", "rate_limit_per_minute": NaN}')
    send("patch", f"/api/learning-agents/{agent.pk}/graduation/settings", json.dumps({"auto_graduate": "yes"}))
