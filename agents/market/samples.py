"""The bundled real datasets (agents/market/sample_data, see PROVENANCE.md there) and their loader.

`load_sample_datasets` is the one service behind `manage.py load_sample_data` and anything else
(demo setup, tests) that wants the sample instruments: it goes through the same CSV importer as
user files, so it is idempotent (a second run changes nothing and bumps no data_version).
"""

from dataclasses import dataclass
from pathlib import Path

from agents.market.importer import ImportResult, import_bars_csv

SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"


@dataclass(frozen=True)
class SampleDataset:
    symbol: str
    name: str
    filename: str
    interval: str
    bars: int  # rows in the file, as documented in PROVENANCE.md
    bars_per_year: float | None = None  # None: DEFAULT_BARS_PER_YEAR for the interval

    @property
    def path(self) -> Path:
        return SAMPLE_DATA_DIR / self.filename


SAMPLE_DATASETS: tuple[SampleDataset, ...] = (
    SampleDataset("SPX", "S&P 500 index", "SPX_daily_1999_2018.csv", "1d", 5031),
    SampleDataset("IXIC", "NASDAQ Composite", "IXIC_daily_1999_2018.csv", "1d", 5031),
    SampleDataset("GOOG", "Alphabet (GOOG)", "GOOG_daily_2004_2013.csv", "1d", 2148),
    # FX trades around the clock five days a week: 24 * 5 * 52 hourly bars a year.
    SampleDataset("EURUSD", "Euro / US dollar", "EURUSD_hourly_2017_2018.csv", "1h", 5000, 24 * 5 * 52),
    SampleDataset("BTCUSD", "Bitcoin / US dollar", "BTCUSD_monthly_2012_2024.csv", "1mo", 156, 12),
)

SAMPLE_SYMBOLS = tuple(d.symbol for d in SAMPLE_DATASETS)


def get_sample_dataset(symbol: str) -> SampleDataset:
    """The bundled dataset for symbol (case-insensitive); KeyError naming the known symbols otherwise."""
    for dataset in SAMPLE_DATASETS:
        if dataset.symbol.upper() == symbol.upper():
            return dataset
    raise KeyError(f"no bundled dataset {symbol!r}; known: {', '.join(SAMPLE_SYMBOLS)}")


def select_sample_datasets(only=None) -> tuple[SampleDataset, ...]:
    """The bundled datasets named in only (any case), in SAMPLE_DATASETS order; all when only is empty."""
    if not only:
        return SAMPLE_DATASETS
    wanted = {get_sample_dataset(symbol).symbol for symbol in only}
    return tuple(d for d in SAMPLE_DATASETS if d.symbol in wanted)


def load_sample_dataset(dataset: SampleDataset, progress=None) -> ImportResult:
    """Import one bundled dataset (one transaction); progress(done, total) as for import_bars_csv."""
    return import_bars_csv(
        dataset.path,
        symbol=dataset.symbol,
        name=dataset.name,
        interval=dataset.interval,
        bars_per_year=dataset.bars_per_year,
        progress=progress,
    )


def load_sample_datasets(only=None) -> list[tuple[SampleDataset, ImportResult]]:
    """Import the bundled datasets (or only the given symbols), one transaction per dataset.

    Returns (dataset, ImportResult) pairs in SAMPLE_DATASETS order. KeyError for an unknown symbol,
    before anything is imported.
    """
    return [(dataset, load_sample_dataset(dataset)) for dataset in select_sample_datasets(only)]
