"""The evaluation protocol: where an agent's bars are cut into selection folds and the sealed exam.

Given ``n`` bars (oldest first), an agent's ``test_fraction`` f and ``n_folds`` K:

- the **sealed test window** is the newest ``n_test = floor(n * f)`` bars. It is the exam: the
  refiner never sees its metrics or trades, candidates are never ranked on it, the optimiser never
  receives a score from it. Only the gates read it, and each reading is recorded
  (:mod:`agents.evaluation.exam`).
- the **selection data** is everything older, ``n_sel = n - n_test`` bars, cut into K contiguous,
  non-overlapping, equal folds (the first ``n_sel mod K`` bars, the oldest, only warm up the
  indicators). Every fold is backtested on its own, starting flat.

Why K contiguous blocks ("rolling" validation blocks) rather than anchored train/validation pairs
or purged k-fold: a parameter set has no state fitted to the data; the search over parameter sets
is the only fit, and it sees every fold. So a fold needs no training part, and what the folds buy
is a view of consistency over time: a parameter set that earns its score in one regime only shows
it in the spread of its fold scores. Purging and an embargo exist to stop labels that overlap in
time from leaking between train and test folds; here a fold starts flat and ends flat (an open
trade is closed at the fold's last close), so no trade spans two folds, and indicator warm-up is
taken from earlier bars only (target positions are computed over the whole history, and each
bar's target depends only on bars up to it), so the only leakage an embargo would stop cannot
happen.

Warm-up without look-ahead: the targets of fold k and of the test window are the slices of one
target array computed from all bars; a bar's target never depends on a later bar (the templates'
property, tested with hypothesis in tests/agents/test_evaluation_protocol.py).
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
