"""Reading the sealed test window, on a gate's behalf, and keeping count.

A reading is computed outside any transaction (it is a backtest) and recorded with
:func:`exam_record` inside the transaction that acts on it, so a rolled-back decision leaves no
reading behind. :func:`exam_usage` tells a gate how often this window has been read and on how
many distinct parameter sets: every look at the exam that informs a choice makes it a little
less of an exam, and the count is shown beside every decision that used it.
"""

import datetime as dt
import hashlib
import json

import numpy as np
from django.db.models import Count

from agents.models import ExamReading
from agents.refiners.base import params_key


def params_digest(params):
    """A short stable hash of a cleaned parameter set (the identity refiners use)."""
    return hashlib.sha256(json.dumps(params_key(params), default=str).encode()).hexdigest()[:32]


def _aware(value):
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def window_of(bars, protocol):
    """(start, end, bars) of the sealed window, as recorded."""
    ts = bars.timestamps[protocol.test]
    return _aware(ts[0]), _aware(ts[-1]), len(ts)


def exam_record(*, agent_id, purpose, params, window, score, version_id=None, refinement_id=None,
                iteration_id=None):
    start, end, n = window
    return ExamReading.objects.create(
        agent_id=agent_id, purpose=purpose, params_key=params_digest(params), window_start=start,
        window_end=end, bars=n, score=score, version_id=version_id, refinement_id=refinement_id,
        iteration_id=iteration_id,
    )


def exam_usage(agent_id, window_start):
    """{"readings", "distinct_params"} on the sealed window that starts at ``window_start``."""
    row = ExamReading.objects.filter(agent_id=agent_id, window_start=window_start).aggregate(
        readings=Count("id"), distinct_params=Count("params_key", distinct=True)
    )
    return {"readings": row["readings"] or 0, "distinct_params": row["distinct_params"] or 0}


def exam_record_stored(*, iteration, purpose):
    """Record a gate's use of the sealed-window result an iteration stored (nothing recomputed)."""
    test = (iteration.windows or {}).get("test")
    if not test or iteration.version_id is None:
        return None
    start, end = (dt.datetime.fromisoformat(test[k]).replace(tzinfo=dt.UTC) for k in ("start", "end"))
    return exam_record(
        agent_id=iteration.agent_id, purpose=purpose, params=iteration.version.params,
        window=(start, end, test["bars"]), score=iteration.score, version_id=iteration.version_id,
        iteration_id=iteration.pk,
    )
