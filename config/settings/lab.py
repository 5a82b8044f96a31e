"""The lab's own behaviour: learning, alerts and notifications, graduation and feeds, Claude."""

import json
import os

from django.core.exceptions import ImproperlyConfigured

from config.env import boolean, integer, integer_list, number, positive_int, text

# --- Lab behaviour --------------------------------------------------------------------
LAB_MAX_CONCURRENT_ITERATIONS = positive_int("LAB_MAX_CONCURRENT_ITERATIONS", 4)
# A queued iteration not started after this long has its task sent again (lost message).
LAB_REQUEUE_AFTER_SECONDS = positive_int("LAB_REQUEUE_AFTER_SECONDS", 600)
LAB_DEFAULT_CANDIDATES = positive_int("LAB_DEFAULT_CANDIDATES", 8)
LAB_CONSOLE_BASE_URL = text("LAB_CONSOLE_BASE_URL", "http://127.0.0.1:8000")

# --- Alerts and notifications (rules documented in alerts/monitor.py) --------------------
# A repeat of an open alert notifies again only after this long.
LAB_ALERT_REPEAT_INTERVAL_MINUTES = positive_int("LAB_ALERT_REPEAT_INTERVAL_MINUTES", 60)
# PERFORMANCE_DEGRADATION: relative win-rate drop over the last 3 iterations ...
LAB_ALERT_WIN_RATE_DROP = number("LAB_ALERT_WIN_RATE_DROP", 0.10, 0.0, 1.0)
# ... or the objective below its recent average by this margin (relative) ...
LAB_ALERT_OBJECTIVE_MARGIN = number("LAB_ALERT_OBJECTIVE_MARGIN", 0.25, 0.0, 10.0)
# ... relative to max(|average|, this floor), so averages near 0 do not fire on noise ...
LAB_ALERT_OBJECTIVE_FLOOR = number("LAB_ALERT_OBJECTIVE_FLOOR", 0.1, 1e-6, 100.0)
# ... where "recent" is this many succeeded iterations before the latest.
LAB_ALERT_RECENT_WINDOW = positive_int("LAB_ALERT_RECENT_WINDOW", 5)
# No degradation alert (and so no demotion) rests on fewer trades than this, on either side ...
LAB_ALERT_MIN_TRADES = positive_int("LAB_ALERT_MIN_TRADES", 20)
# ... nor on a drop that a one-sided test at this level cannot tell from noise.
LAB_ALERT_SIGNIFICANCE = number("LAB_ALERT_SIGNIFICANCE", 0.01, 1e-6, 0.5)
# ERROR alerts become CRITICAL after this many consecutive failures.
LAB_ALERT_ERROR_CRITICAL_AFTER = positive_int("LAB_ALERT_ERROR_CRITICAL_AFTER", 3)
LAB_ALERT_MILESTONES = tuple(integer_list("LAB_ALERT_MILESTONES", [10, 50, 100, 500], low=1))
LAB_ALERT_MILESTONE_WIN_RATE = number("LAB_ALERT_MILESTONE_WIN_RATE", 0.70, 0.0, 1.0)
LAB_ALERT_MILESTONE_MIN_TRADES = positive_int("LAB_ALERT_MILESTONE_MIN_TRADES", 10)
LAB_WEBHOOK_TIMEOUT_SECONDS = number("LAB_WEBHOOK_TIMEOUT_SECONDS", 5.0, 0.1, 300.0)
LAB_WEBHOOK_MAX_ATTEMPTS = positive_int("LAB_WEBHOOK_MAX_ATTEMPTS", 5)
LAB_WEBHOOK_BACKOFF_SECONDS = number("LAB_WEBHOOK_BACKOFF_SECONDS", 2.0, 0.0, 3600.0)
# Webhooks may only reach public addresses unless this is on (tests, on-premises receivers).
LAB_WEBHOOK_ALLOW_PRIVATE = boolean("LAB_WEBHOOK_ALLOW_PRIVATE", False)


# --- Graduation and paper trading ----------------------------------------------------
# Lab-wide overrides of the graduation rules' defaults (declared once, in graduation/criteria.py):
# each LAB_GRAD_<NAME> variable set overrides the rule <name>, e.g. LAB_GRAD_MIN_DSR=0.9 or
# LAB_GRAD_MIN_PROBABILISTIC_SHARPE=null. Values are JSON numbers, true/false or null; the rules
# check them at start-up (an unknown name or a bad value stops it, naming each).
def _grad_value(name, raw):
    try:
        return json.loads(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be a number, true, false or null") from None


LAB_GRADUATION_CRITERIA = {
    key.removeprefix("LAB_GRAD_").lower(): _grad_value(key, raw)
    for key, raw in sorted(os.environ.items()) if key.startswith("LAB_GRAD_")
}
# Paper -> live evidence: at least this many bars traded on paper and this many closed trades.
LAB_PAPER_MIN_BARS = positive_int("LAB_PAPER_MIN_BARS", 60)
LAB_PAPER_MIN_TRADES = positive_int("LAB_PAPER_MIN_TRADES", 3)
# Champion / challenger (graduation.challenger): a challenger replaces the traded version only when
# the paired Sharpe test on the same bars is significant at this one-sided level (0.05: the 95%
# the paper -> live gate asks of a paper record) over at least its minimum track record.
LAB_CHALLENGER_SIGNIFICANCE = number("LAB_CHALLENGER_SIGNIFICANCE", 0.05, 1e-6, 0.5)
# Replay feed (make run): hold back the newest bars of the bundled datasets and release
# this many per instrument every LAB_REPLAY_INTERVAL_SECONDS, so paper agents trade visibly.
LAB_REPLAY_ENABLED = boolean("LAB_REPLAY_ENABLED", False)
LAB_REPLAY_HOLD_BACK_BARS = positive_int("LAB_REPLAY_HOLD_BACK_BARS", 250)
LAB_REPLAY_BARS_PER_TICK = positive_int("LAB_REPLAY_BARS_PER_TICK", 1)
LAB_REPLAY_INTERVAL_SECONDS = positive_int("LAB_REPLAY_INTERVAL_SECONDS", 30)
LAB_PAPER_INTERVAL_SECONDS = positive_int("LAB_PAPER_INTERVAL_SECONDS", 30)
# Bar feeds from exchanges (agents.market.feeds.ccxt_feed): request timeout, retries of network
# errors, timeouts and 429s with exponential backoff (capped), candles per request, pages per poll.
LAB_FEED_TIMEOUT_SECONDS = positive_int("LAB_FEED_TIMEOUT_SECONDS", 10)
LAB_FEED_MAX_RETRIES = integer("LAB_FEED_MAX_RETRIES", 4, low=0, high=20)
LAB_FEED_BACKOFF_SECONDS = number("LAB_FEED_BACKOFF_SECONDS", 1.0, 0.0, 3600.0)
LAB_FEED_MAX_BACKOFF_SECONDS = number("LAB_FEED_MAX_BACKOFF_SECONDS", 30.0, 0.0, 3600.0)
LAB_FEED_PAGE_LIMIT = positive_int("LAB_FEED_PAGE_LIMIT", 500)
LAB_FEED_MAX_PAGES = positive_int("LAB_FEED_MAX_PAGES", 20)
if LAB_FEED_BACKOFF_SECONDS > LAB_FEED_MAX_BACKOFF_SECONDS:
    raise ImproperlyConfigured("LAB_FEED_BACKOFF_SECONDS must be at most LAB_FEED_MAX_BACKOFF_SECONDS, got "
                               f"{LAB_FEED_BACKOFF_SECONDS} > {LAB_FEED_MAX_BACKOFF_SECONDS}")

# --- LLM (Claude) ---------------------------------------------------------------------
# The settings are named after their variables; a variable under its old name would be ignored.
_RENAMED = {"LAB_CLAUDE_MODEL": "ANTHROPIC_MODEL", "LAB_CLAUDE_TIMEOUT": "ANTHROPIC_TIMEOUT_SECONDS",
            "LAB_CLAUDE_MAX_RETRIES": "ANTHROPIC_MAX_RETRIES", "LAB_CLAUDE_MAX_TOKENS": "ANTHROPIC_MAX_TOKENS"}
for _old, _new in _RENAMED.items():
    if _old in os.environ:
        raise ImproperlyConfigured(f"{_old} is now called {_new}: rename the variable")
ANTHROPIC_API_KEY = text("ANTHROPIC_API_KEY")
# For a gateway or proxy in front of the API; empty = the SDK's default endpoint.
ANTHROPIC_BASE_URL = text("ANTHROPIC_BASE_URL")
ANTHROPIC_MODEL = text("ANTHROPIC_MODEL", "claude-sonnet-4-6")
ANTHROPIC_TIMEOUT_SECONDS = number("ANTHROPIC_TIMEOUT_SECONDS", 60.0, 1.0, 600.0)
ANTHROPIC_MAX_RETRIES = integer("ANTHROPIC_MAX_RETRIES", 2, low=0, high=10)
ANTHROPIC_MAX_TOKENS = positive_int("ANTHROPIC_MAX_TOKENS", 4096)
LAB_LLM_DAILY_CALLS = positive_int("LAB_LLM_DAILY_CALLS", 500)
LAB_LLM_DAILY_TOKENS = positive_int("LAB_LLM_DAILY_TOKENS", 5_000_000)
# Freed memory a process keeps in its heap for the next batch evaluation (glibc; 0 = its default
# 128 KB); set at process start by config.warmup (config/heap.py says why).
LAB_HEAP_TOP_PAD_MB = integer("LAB_HEAP_TOP_PAD_MB", 32, low=0, high=1024)
