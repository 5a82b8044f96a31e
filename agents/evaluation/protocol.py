"""The evaluation protocol: where an agent's bars are cut into selection folds and the sealed exam.

Given ``n`` bars (oldest first), ``test_fraction`` f and ``n_folds`` K:

- the **sealed test window** is the newest ``n_test = floor(n * f)`` bars, the exam: the refiner,
  the ranking and the optimiser never see it; only the gates read it, and each reading is
  recorded (:mod:`agents.evaluation.exam`);
- the **selection data** is the older ``n_sel = n - n_test`` bars in K contiguous, equal folds
  (the oldest ``n_sel mod K`` bars only warm up the indicators), each backtested from flat.

Why K contiguous blocks rather than train/validation pairs or purged k-fold: a parameter set has
no state fitted to the data, the search is the only fit and it sees every fold, so a fold needs
no training part; the folds show consistency over time (a set that earns its score in one regime
shows it in the spread of its fold scores). No embargo is needed: a fold starts and ends flat,
so no trade spans two folds, and each bar's target depends only on bars up to it (the targets
are slices of one array computed over all bars; a property of the templates, tested with
hypothesis in tests/agents/test_evaluation_protocol.py).
"""

from dataclasses import dataclass

MIN_FOLD_BARS = 20
MIN_TEST_BARS = 20
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_FOLDS = 5
TEST_FRACTION_RANGE = (0.05, 0.5)
FOLDS_RANGE = (2, 20)


class EvaluationError(Exception):
    """The data cannot support an evaluation (e.g. too few bars)."""


@dataclass(frozen=True)
class Protocol:
    folds: tuple  # of slices, oldest first
    test: slice

    @property
    def selection(self):
        return slice(self.folds[0].start, self.folds[-1].stop)

    @property
    def selection_bars(self):
        return sum(f.stop - f.start for f in self.folds)

    def describe(self, bars):
        """JSON-ready spans (first and last timestamp, bar count) of every fold and the test window."""

        def span(s):
            ts = bars.timestamps[s]
            return {"start": str(ts[0])[:19], "end": str(ts[-1])[:19], "bars": len(ts), "first": s.start}

        return {
            "folds": [span(f) for f in self.folds],
            "test": span(self.test),
            "selection": span(self.selection),
        }


def split_protocol(n_bars, *, test_fraction, n_folds):
    """Cut ``n_bars`` bars into ``n_folds`` selection folds and the sealed test window."""
    n_test = int(n_bars * test_fraction)
    n_sel = n_bars - n_test
    fold = n_sel // n_folds if n_folds else 0
    if n_test < MIN_TEST_BARS or fold < MIN_FOLD_BARS:
        raise EvaluationError(
            f"not enough bars: {n_bars} bars with test_fraction {test_fraction} and {n_folds} folds leave "
            f"{n_test} sealed test bars (at least {MIN_TEST_BARS} needed) and folds of {fold} bars "
            f"(at least {MIN_FOLD_BARS} needed)"
        )
    first = n_sel - fold * n_folds
    folds = tuple(slice(first + k * fold, first + (k + 1) * fold) for k in range(n_folds))
    return Protocol(folds=folds, test=slice(n_sel, n_bars))
