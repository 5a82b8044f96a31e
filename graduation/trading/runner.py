"""The paper tick: every open account (paper, live, shadow) processes the bars it has not seen.

A champion account whose version differs from the agent's current one has a challenger: the
shadow account is opened (or replaced) before the champion processes its bars, on the same bar
(graduation.challenger). A shadow account, once processed, runs the paired test instead of the
champion's reactions (drawdown, degradation and eligibility read the champion only).

Each account is independent: one that fails is logged and the others go on. Two ticks running at
once (a slow tick overlapping the next) cannot double-process an account: the second one's
write finds the account's revision moved and is discarded (AccountBusy).
"""

import logging

from django.utils import timezone

from graduation import challenger, reactions, services
from graduation.models import AccountRole, PaperAccount
from graduation.trading import accounts

logger = logging.getLogger(__name__)

_RELATED = ("agent__instrument", "agent__current_version", "version")


def run_account(account_id, *, max_bars=accounts.MAX_BARS_PER_TICK):
    """Process one account and run the reactions; returns {bars, fills, trades, action}."""
    account = PaperAccount.objects.select_related(*_RELATED).filter(pk=account_id, closed_at__isnull=True).first()
    if account is None:
        return {"bars": 0, "fills": 0, "trades": 0, "action": None}
    agent = account.agent
    if agent.status not in services.TRADING:
        accounts.close_account(agent, f"the agent is {agent.status}, not trading", now=timezone.now())
        return {"bars": 0, "fills": 0, "trades": 0, "action": "closed"}
    if account.role == AccountRole.CHALLENGER:
        processed = accounts.process_account(account, max_bars=max_bars)
        action = challenger.challenger_after_tick(agent.pk) if processed.bars else None
        return {"bars": processed.bars, "fills": processed.fills, "trades": processed.trades, "action": action,
                "more": processed.more}
    if agent.current_version_id and account.version_id != agent.current_version_id:
        # A version made current since the pin (the refinement_applied receiver opens its shadow; this
        # catches one it missed or a change by other means): it challenges, it does not re-pin.
        challenger.challenger_sync(agent.pk)
    processed = accounts.process_account(account, max_bars=max_bars)
    action = reactions.after_paper(account, processed)
    return {"bars": processed.bars, "fills": processed.fills, "trades": processed.trades, "action": action,
            "more": processed.more}


def paper_tick():
    """One tick over every open account; returns a summary."""
    ids = list(PaperAccount.objects.filter(closed_at__isnull=True).order_by("pk").values_list("pk", flat=True))
    summary = {"accounts": len(ids), "bars": 0, "fills": 0, "trades": 0, "demoted": 0, "promoted": 0, "busy": 0,
               "errors": 0}
    for pk in ids:
        try:
            done = run_account(pk)
        except accounts.AccountBusy:
            summary["busy"] += 1
            continue
        except Exception:
            logger.exception("paper tick failed for account %s", pk)
            summary["errors"] += 1
            continue
        for key in ("bars", "fills", "trades"):
            summary[key] += done[key]
        summary["demoted"] += done["action"] == "demoted"
        summary["promoted"] += done["action"] == "promoted"
    if summary["bars"] or summary["errors"]:
        logger.info("paper tick: %s", summary)
    return summary
