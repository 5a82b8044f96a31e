"""Print a tournament's standings as a table (or JSON): the stored snapshot, or a fresh one."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from tournaments.models import Tournament, TournamentStanding
from tournaments.services.standings import standings_recompute

COLUMNS = [("#", 3), ("agent", 40), ("market", 10), ("ver", 4), ("score", 8), ("win SR/yr", 10), ("win ret", 9),
           ("win DD", 8), ("fwd bars", 8), ("fwd SR/yr", 10), ("fwd ret", 9), ("sealed", 6)]


def _pct(value):
    return f"{value * 100:.2f}%"


class Command(BaseCommand):
    help = ("Print a tournament's standings: rank, score (per-bar Sharpe of the evidence), the common window and "
            "the forward record, with the leader's deflated Sharpe and p(edge over the runner-up is noise).")

    def add_arguments(self, parser):
        parser.add_argument("tournament", type=int, help="Tournament id.")
        parser.add_argument("--recompute", action="store_true", help="Recompute the standings first.")
        parser.add_argument("--json", action="store_true", help="Print rows and summary as JSON.")

    def handle(self, *args, tournament, recompute=False, json: bool = False, **options):
        found = Tournament.objects.filter(pk=tournament).first()
        if found is None:
            raise CommandError(f"no tournament with id {tournament}")
        if recompute or found.standings_at is None:
            found = standings_recompute(found.pk)
        rows = list(TournamentStanding.objects.filter(tournament=found).select_related("agent__instrument"))
        if json:
            self.stdout.write(_dumps(found, rows))
            return
        self.stdout.write(f"{found.name} ({found.status}): window {found.window_start:%Y-%m-%d %H:%M} .. "
                          f"{found.window_end:%Y-%m-%d %H:%M} UTC, {found.rounds_run} rounds, "
                          f"standings of {found.standings_at:%Y-%m-%d %H:%M:%S} UTC")
        self.stdout.write("  ".join(name.ljust(width) for name, width in COLUMNS))
        for row in rows:
            cells = [str(row.rank), row.agent.name[:40], row.agent.instrument.symbol[:10], f"v{row.version_number}",
                     f"{row.score:.4f}", f"{row.window['sharpe_annualised']:.2f}", _pct(row.window["total_return"]),
                     _pct(row.window["max_drawdown"]), str(row.forward["bars"]),
                     f"{row.forward['sharpe_annualised']:.2f}" if row.forward["bars"] else "-",
                     _pct(row.forward["total_return"]) if row.forward["bars"] else "-",
                     "yes" if row.window["still_sealed"] else "no"]
            self.stdout.write("  ".join(cell.ljust(width) for cell, (_n, width) in zip(cells, COLUMNS, strict=True)))
        summary = found.summary
        if rows:
            self.stdout.write(f"leader's deflated Sharpe: {summary['deflated_sharpe']:.4f} "
                              f"(N = {summary['n_trials']} distinct trials of all entrants, "
                              f"V = {summary['trials_variance']:.3g})")
        if summary.get("edge"):
            edge = summary["edge"]
            self.stdout.write(f"p(leader's edge over the runner-up is noise): {edge['p_value']:.4f} "
                              f"(paired Sharpe test on {edge['common_bars']} common bars, z = {edge['z']:.3f})")
        self.stdout.write(f"ranking: {summary.get('ranking_rule', '')}")


def _dumps(tournament, rows):
    return json.dumps({
        "tournament": {"id": tournament.pk, "name": tournament.name, "status": tournament.status,
                       "window_start": tournament.window_start, "window_end": tournament.window_end,
                       "standings_at": tournament.standings_at},
        "summary": tournament.summary,
        "standings": [{"rank": r.rank, "agent": str(r.agent_id), "name": r.agent.name, "score": r.score,
                       "version": r.version_number, "window": r.window, "forward": r.forward} for r in rows],
    }, indent=2, cls=DjangoJSONEncoder)
