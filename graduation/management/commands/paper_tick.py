"""Run one paper tick (and, with --replay, one replay tick first) now, as the beat would."""

from django.core.management.base import BaseCommand

from graduation.trading.feed import replay_tick
from graduation.trading.runner import paper_tick


class Command(BaseCommand):
    help = "Process the new bars of every open paper / live account once (what paper_tick_task does)."

    def add_arguments(self, parser):
        parser.add_argument("--replay", action="store_true", help="Release the next replay bars first (forced).")

    def handle(self, *args, replay, **options):
        if replay:
            self.stdout.write(f"replay: {replay_tick(force=True) or 'nothing to release'}")
        self.stdout.write(f"paper: {paper_tick()}")
