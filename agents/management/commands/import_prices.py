"""Import OHLCV bars from a CSV file into an instrument (created if missing): all or nothing."""

from django.core.management.base import BaseCommand, CommandError

from agents.market.csvreport import MISSING_POLICIES, NON_POSITIVE_POLICIES
from agents.market.importer import FIELDS, CsvImportError, ImportOptions, import_bars_csv
from agents.market.models import BarInterval

# Files with at least this many bars get progress lines (every 10%) before the summary.
PROGRESS_MIN_BARS = 5000


class ProgressPrinter:
    """A progress(done, total) callback writing a line each time another 10% is done."""

    def __init__(self, write, label="", min_total=PROGRESS_MIN_BARS, unit="bars"):
        self.write = write
        self.label = label
        self.unit = unit
        self.min_total = min_total
        self.last_decile = 0

    def __call__(self, done, total):
        if total < self.min_total:
            return
        decile = done * 10 // total
        if decile > self.last_decile:
            self.last_decile = decile
            self.write(f"  {self.label}{done * 100 // total}% ({done}/{total} {self.unit})")


class Command(BaseCommand):
    help = (
        "Import OHLCV bars from a CSV file (header timestamp,open,high,low,close[,volume]; other header names "
        "via --<field>-column; a date and one value with --close-only). Delimiter (, ; tab), decimal comma, "
        "BOM, zoned or epoch timestamps are detected. The whole file is validated first; on any error nothing "
        "is written. Re-importing changes nothing; newer bars are added and changed bars updated."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file to import")
        parser.add_argument("--symbol", required=True, help="instrument symbol (created if missing)")
        parser.add_argument("--name", default="", help="instrument name (sets it when given)")
        parser.add_argument(
            "--interval",
            choices=BarInterval.values,
            default=None,
            help="bar interval; default: the existing instrument's, or 1d for a new one",
        )
        parser.add_argument(
            "--bars-per-year", type=float, default=None, help="for annualising; default by interval (1d: 252)"
        )
        parser.add_argument(
            "--close-only", action="store_true",
            help="the file has a date and one value column (e.g. FRED's DATE,DCOILWTICO): open = high = low = "
            "close; the instrument records that it has no intrabar range",
        )
        parser.add_argument(
            "--missing", choices=MISSING_POLICIES, default="fail",
            help="rows with a missing price (empty, '.', NA, NaN, null): fail (default), skip them, or ffill "
            "(carry the previous close forward)",
        )
        parser.add_argument(
            "--adjusted", action="store_true",
            help="use the Adj Close column as close and scale open, high and low by adj_close / close",
        )
        parser.add_argument(
            "--non-positive", choices=NON_POSITIVE_POLICIES, default="fail",
            help="rows with a zero or negative price: fail (default; the engine cannot trade them) or skip them",
        )
        parser.add_argument(
            "--timezone", default="", metavar="ZONE",
            help="IANA zone of naive timestamps, e.g. America/New_York (default: UTC)",
        )
        for field in FIELDS:
            parser.add_argument(
                f"--{field.replace('_', '-')}-column",
                dest=f"{field}_column",
                metavar="NAME",
                help=f"header name of the {field} column (default: {field!r}, case-insensitive)",
            )

    def handle(self, *args, **options):
        columns = {field: options[f"{field}_column"] for field in FIELDS if options[f"{field}_column"]}
        symbol = options["symbol"]
        read = ImportOptions(
            columns=columns, close_only=options["close_only"], missing=options["missing"],
            adjusted=options["adjusted"], non_positive=options["non_positive"], timezone=options["timezone"],
        )
        try:
            result = import_bars_csv(
                options["path"],
                symbol=symbol,
                name=options["name"],
                interval=options["interval"],
                bars_per_year=options["bars_per_year"],
                options=read,
                progress=ProgressPrinter(self.stdout.write, "writing "),
                read_progress=ProgressPrinter(self.stdout.write, "reading ", unit="rows"),
            )
        except CsvImportError as exc:
            listing = "\n".join(f"  {message}" for message in exc.errors)
            raise CommandError(f"{options['path']}: import refused, nothing was written:\n{listing}")
        instrument = result.instrument
        for note in result.notes:
            self.stdout.write(f"  {note}")
        summary = (
            f"{instrument.symbol}: {result.total} bars read: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged"
        )
        if result.changed:
            self.stdout.write(self.style.SUCCESS(f"{summary} (data version {instrument.data_version})."))
        else:
            self.stdout.write(f"{summary}; nothing changed.")
