"""The paper tick: every open account (paper and live) processes the bars it has not seen.

Each account is independent: one that fails is logged and the others go on. Two ticks running at
once (a slow tick overlapping the next) cannot double-process an account: the second one's
write finds the account's revision moved and is discarded (AccountBusy).
"""

import logging

from django.utils import timezone

from graduation import reactions, services
from graduation.models import PaperAccount
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
    if agent.current_version_id and account.version_id != agent.current_version_id:
        # A re-pin the refinement_applied receiver did not record (it failed, or the version was
        # changed by other means): record it now; the account then trades the current version.
        services.repin_record(agent.pk, version_id=agent.current_version_id, note="detected by the paper engine")
        account = PaperAccount.objects.select_related(*_RELATED).get(pk=account_id)
    processed = accounts.process_account(account, max_bars=max_bars)
    action = reactions.after_paper(account, processed)
    return {"bars": processed.bars, "fills": processed.fills, "trades": processed.trades, "action": action,
            "more": processed.more}


def paper_tick():
    """One tick over every open account; returns a summary."""
    ids = list(PaperAccount.objects.filter(closed_at__isnull=True).order_by("pk").values_list("pk", flat=True))
    summary = {"accounts": len(ids), "bars": 0, "fills": 0, "trades": 0, "demoted": 0, "busy": 0, "errors": 0}
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
    if summary["bars"] or summary["errors"]:
        logger.info("paper tick: %s", summary)
    return summary
