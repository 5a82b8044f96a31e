"""Replay an agent's paper account through the backtest engine and report the gap."""

import json

from django.core.management.base import BaseCommand, CommandError

from agents.management.commands._agent_lookup import find_agent
from graduation.models import AccountRole, PaperAccount
from graduation.trading.consistency import TOLERANCE, consistency_report


class Command(BaseCommand):
    help = ("Compare an agent's paper (or live) account with the backtest engine run on the same bars and "
            "decisions: equity, weights, fills, trades, decisions. Exit status 1 when they differ.")

    def add_arguments(self, parser):
        parser.add_argument("agent", help="Agent id or name.")
        parser.add_argument("--account", type=int, help="A specific account id (default: the open or latest one).")
        parser.add_argument("--challenger", action="store_true",
                            help="The shadow (challenger) account instead of the champion, open or latest.")
        parser.add_argument("--all", action="store_true", help="Every open account of the agent (champion and shadow).")
        parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="Relative tolerance (1e-9).")
        parser.add_argument("--json", action="store_true", help="Print the full report as JSON.")

    def handle(self, *args, agent, account, tolerance, json: bool = False, challenger=False, **options):
        found = find_agent(agent)
        accounts = PaperAccount.objects.filter(agent=found).select_related("agent__instrument", "version")
        if account is not None:
            chosen = list(accounts.filter(pk=account))
        elif options.get("all"):
            chosen = list(accounts.filter(closed_at__isnull=True).order_by("role"))
        else:
            accounts = accounts.filter(role=AccountRole.CHALLENGER if challenger else AccountRole.CHAMPION)
            chosen = [accounts.filter(closed_at__isnull=True).first() or accounts.order_by("-opened_at", "-id").first()]
            chosen = [c for c in chosen if c is not None]
        if not chosen:
            kind = "shadow (challenger)" if challenger else "paper"
            raise CommandError(f"agent {found.name} has no {kind} account" + (f" {account}" if account else ""))
        reports = [consistency_report(one, tolerance=tolerance) for one in chosen]
        for report in reports:
            if json:
                self.stdout.write(_dumps(report))
            else:
                self._print(found, report)
        if not all(report["ok"] for report in reports):
            raise SystemExit(1)

    def _print(self, agent, report):
        self.stdout.write(f"{agent.name}: {'live' if report['live'] else 'paper'} {report['role']} account "
                          f"{report['account']}, "
                          f"{report['bars']} bars")
        if "equity_max_rel_gap" in report:
            final = report["final_equity"]
            self.stdout.write(f"  equity:    max relative gap {report['equity_max_rel_gap']:.3g} "
                              f"(final {final['paper']:.2f} vs {final['backtest']:.2f})")
            self.stdout.write(f"  weights:   {report['positions_mismatched']} bar(s) differ")
            self.stdout.write(f"  fills:     {report['fills']['paper']} paper, {report['fills']['backtest']} backtest")
            trades = report["trades"]
            self.stdout.write(f"  trades:    {trades['paper']} paper, {trades['backtest']} backtest, "
                              f"max gap {trades['max_rel_gap']:.3g}")
            decisions = report["decisions_mismatched"]
            self.stdout.write("  decisions: " + ("not checked (re-pinned during the period)" if decisions is None
                                                  else f"{decisions} differ from a full-history run"))
        for problem in report["problems"]:
            self.stdout.write(self.style.ERROR(f"  {problem}"))
        if report["ok"]:
            self.stdout.write(self.style.SUCCESS(f"  consistent within {report['tolerance']:g}"
                                                 + (f" ({report['note']})" if report.get("note") else "")))


def _dumps(report):
    return json.dumps(report, indent=2, default=str)
