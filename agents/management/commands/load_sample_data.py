"""Load the bundled real datasets (agents/market/sample_data) as instruments; safe to run again."""

from django.core.management.base import BaseCommand, CommandError

from agents.management.commands.import_prices import ProgressPrinter
from agents.market.importer import CsvImportError
from agents.market.samples import SAMPLE_SYMBOLS, get_sample_dataset, load_sample_datasets


class Command(BaseCommand):
    help = (
        "Load the bundled sample datasets (" + ", ".join(SAMPLE_SYMBOLS) + ") through the CSV importer. "
        "Idempotent: a second run changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            action="append",
            metavar="SYMBOL",
            help=f"load only this dataset (repeatable); one of {', '.join(SAMPLE_SYMBOLS)}",
        )

    def handle(self, *args, **options):
        only = options["only"]
        for symbol in only or ():
            try:
                get_sample_dataset(symbol)
            except KeyError as exc:
                raise CommandError(f"--only: {exc.args[0]}")
        printers = {}

        def progress(dataset, done, total):
            printer = printers.setdefault(dataset.symbol, ProgressPrinter(self.stdout.write, f"{dataset.symbol}: "))
            printer(done, total)

        try:
            results = load_sample_datasets(only=only, progress=progress)
        except CsvImportError as exc:  # a damaged bundled file: say which rule it breaks
            raise CommandError("sample data refused, nothing written for that dataset:\n  " + "\n  ".join(exc.errors))
        width = max(len(dataset.symbol) for dataset, _ in results)
        for dataset, result in results:
            head = f"{dataset.symbol:<{width}}  {dataset.name} ({dataset.interval}): "
            if result.changed:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{head}{result.created} bars created, {result.updated} updated, {result.unchanged} unchanged"
                    )
                )
            else:
                self.stdout.write(f"{head}{result.total} bars already loaded, unchanged")
        if not any(result.changed for _, result in results):
            self.stdout.write("Sample data already loaded; nothing changed.")
