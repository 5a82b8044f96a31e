"""Load the bundled real datasets (agents/market/sample_data) as instruments; safe to run again."""

from django.core.management.base import BaseCommand, CommandError

from agents.market.importer import CsvImportError
from agents.market.samples import SAMPLE_SYMBOLS, load_sample_dataset, select_sample_datasets


class Command(BaseCommand):
    help = (
        "Load the bundled sample datasets (" + ", ".join(SAMPLE_SYMBOLS) + ") through the CSV importer, "
        "one transaction each. Idempotent: a second run changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            action="append",
            metavar="SYMBOL",
            help=f"load only this dataset (repeatable); one of {', '.join(SAMPLE_SYMBOLS)}",
        )

    def handle(self, *args, **options):
        try:
            datasets = select_sample_datasets(options["only"])
        except KeyError as exc:
            raise CommandError(f"--only: {exc.args[0]}")
        width = max(len(dataset.symbol) for dataset in datasets)
        changed = False
        for dataset in datasets:
            try:
                result = load_sample_dataset(dataset)
            except CsvImportError as exc:  # a damaged bundled file: say which rule it breaks
                listing = "\n".join(f"  {message}" for message in exc.errors)
                raise CommandError(f"{dataset.path}: refused, nothing written for {dataset.symbol}:\n{listing}")
            head = f"{dataset.symbol:<{width}}  {dataset.name} ({dataset.interval}): "
            if result.changed:
                changed = True
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{head}{result.created} bars created, {result.updated} updated, {result.unchanged} unchanged"
                    )
                )
            else:
                self.stdout.write(f"{head}{result.total} bars already loaded, unchanged")
        if not changed:
            self.stdout.write("Sample data already loaded; nothing changed.")
