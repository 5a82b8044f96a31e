"""Hold back the newest bars of the bundled datasets for the replay feed (graduation.trading.feed)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from graduation.trading.feed import replay_setup


class Command(BaseCommand):
    help = (
        "Remove the newest LAB_REPLAY_HOLD_BACK_BARS bars of each loaded bundled dataset from the database and "
        "remember them; replay_tick_task then releases LAB_REPLAY_BARS_PER_TICK per instrument per tick. "
        "Running it again (e.g. at every start, after load_sample_data) resumes the replay; --restart starts "
        "it over."
    )

    def add_arguments(self, parser):
        parser.add_argument("symbols", nargs="*", help="Bundled dataset symbols (default: all loaded ones).")
        parser.add_argument("--hold-back", type=int, default=None, help="Bars to hold back (default: setting).")
        parser.add_argument("--restart", action="store_true", help="Start the replay over from its first bar.")
        parser.add_argument("--force", action="store_true",
                            help="Set up even though LAB_REPLAY_ENABLED is off (nothing will release the bars).")

    def handle(self, *args, symbols, hold_back, restart, force, **options):
        if not settings.LAB_REPLAY_ENABLED and not force:
            raise CommandError("LAB_REPLAY_ENABLED is off: the held-back bars would never come back. "
                               "Set LAB_REPLAY_ENABLED=1 (or pass --force).")
        if hold_back is not None and hold_back < 1:
            raise CommandError("--hold-back must be >= 1")
        try:
            lines = replay_setup(symbols or None, hold_back=hold_back, restart=restart)
        except KeyError as exc:
            raise CommandError(str(exc.args[0]))
        for line in lines:
            self.stdout.write(line)
