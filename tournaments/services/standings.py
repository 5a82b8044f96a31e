"""A tournament's standings: every entrant on the same evidence, ranked, and the tournament deflated.

Per entrant:

- **traded version**: the version its open paper/live account trades (the pinned one,
  graduation.trading.accounts.open_account_of), else its current version;
- **common window**: that version backtested on the entrant's bars inside [window_start,
  window_end] (agents.evaluation.backtests.evaluate_sealed; the targets are computed over all the
  bars, so earlier bars warm the indicators up, and each bar's target depends only on bars up to
  it); per-bar returns after the window's first bar;
- **forward record**: the per-bar returns of its open account's equity on the bars after the
  newest bar it had when it joined (TournamentEntry.forward_from), when it trades;
- **evidence**: the common-window returns, followed by the forward returns once they number at
  least MIN_FORWARD_BARS (fewer say too little, and would only add noise to the score).

Ranking rule: by the per-bar Sharpe ratio (mean / sd, ddof 1) of the evidence, highest first;
ties by name. Shown beside it: the common window and the forward record separately.

Tournament-wide figures (on the leader):

- **deflated Sharpe** (Bailey & López de Prado 2014): the leader's evidence Sharpe, skewness and
  kurtosis over its T bars, tested against SR0, the best Sharpe N unskilled trials would reach,
  with N = the distinct trials of ALL entrants together (agents.evaluation.trial_history; a
  trial is (template, instrument, parameter set), so two entrants trying the same set on the
  same data count once; each entrant's traded version counts too, so N >= the distinct
  entrants) and V their selection Sharpes' variance capped at the null's 1 / (T - 1), T the
  leader's evidence bars (agents.evaluation.trials.population; V = 0, no deflation beyond
  the PSR, while fewer than two trials have a selection Sharpe): a tournament is itself one more selection, of the best
  of everything its entrants tried;
- **p(edge is noise)**: the one-sided p-value of the paired Sharpe test (Jobson & Korkie 1981,
  Memmel 2003; agents.evaluation.statistics.sharpe_difference_test) of the leader against the
  runner-up on the bars both have (aligned on common timestamps, so entrants on different
  instruments compare on the bars they share).

Standings follow forward trading: each snapshot keeps `forward_marks`, the last bar each entrant's
open account had processed; standings_refresh_stale (beat, every paper interval) sends
recompute_standings_task for the active tournaments whose marks moved since (an account traded
new bars, opened or closed), at most STALE_BATCH per tick and the stalest first. Sending twice is
harmless: a recomputation rewrites the whole snapshot.

Reading the common window is a reading of each entrant's sealed window: it is recorded as an
ExamReading (purpose "tournament") once per parameter set and window, so the gates' counts of
sealed-window use include the tournament's looks without counting each recomputation again.
"""

import math

import numpy as np
from django.db import models, transaction
from django.utils import timezone

from agents.evaluation.backtests import evaluate_sealed
from agents.evaluation.exam import exam_record, params_digest
from agents.evaluation.protocol import EvaluationError, Protocol
from agents.evaluation.statistics import deflated_sharpe, sharpe_difference_test, sharpe_stats
from agents.evaluation.trial_history import Trial, agent_history
from agents.evaluation.trials import population
from agents.market.cache import load_bars
from agents.models import ExamPurpose, ExamReading
from agents.refiners.base import schema_key
from agents.strategies.registry import get_template
from config import task_messages
from graduation.models import AccountRole, PaperAccount
from graduation.trading.accounts import open_account_of, to_datetime, to_datetime64
from graduation.trading.metrics import curve
from tournaments import task_names
from tournaments.models import Tournament, TournamentStanding, TournamentStatus
from tournaments.services.alerting import MIN_FORWARD_BARS, forward_psr, standings_alerts
from tournaments.services.tournaments import sealed_span

SPARK_POINTS = 120
STALE_BATCH = 20
RANKING_RULE = (f"per-bar Sharpe of the evidence: the common-window returns, then the forward record once it has "
                f"at least {MIN_FORWARD_BARS} bars; highest first, ties by name")


def _figures(returns, bars_per_year):
    """Sharpe (per bar and annualised), total return and max drawdown of per-bar returns."""
    stats = sharpe_stats(returns)
    equity = np.cumprod(1.0 + np.asarray(returns, dtype=np.float64)) if len(returns) else np.ones(0)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))
    drawdown = float(np.max(1.0 - np.concatenate([[1.0], equity]) / peak)) if len(equity) else 0.0
    return {"sharpe": stats.sr, "sharpe_annualised": stats.sr * math.sqrt(bars_per_year),
            "total_return": float(equity[-1] - 1.0) if len(equity) else 0.0, "max_drawdown": drawdown,
            "bars": stats.t, "skew": stats.skew, "kurtosis": stats.kurt}


def _thin(values, points=SPARK_POINTS):
    if len(values) <= points:
        return [round(float(v), 6) for v in values]
    index = np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))
    return [round(float(values[i]), 6) for i in index]


def window_evidence(tournament, agent, version):
    """(returns, timestamps, SealedEvaluation, exam window) of ``version`` on the common window."""
    bars = load_bars(agent.instrument_id)
    ts = bars.timestamps
    start = int(np.searchsorted(ts, to_datetime64(tournament.window_start)))
    stop = int(np.searchsorted(ts, to_datetime64(tournament.window_end), side="right"))
    template = get_template(agent.strategy_template)
    params = template.validate(version.params)
    sealed = evaluate_sealed(agent, template, params, bars, Protocol(folds=(), test=slice(start, stop)),
                             agent.instrument.bars_per_year)
    window = (to_datetime(ts[start]), to_datetime(ts[stop - 1]), stop - start)
    return np.asarray(sealed.returns, dtype=np.float64), ts[start + 1:stop], sealed, params, window


def forward_evidence(entry, account):
    """(returns, timestamps) of the account's equity on the bars after ``entry.forward_from``."""
    if account is None:
        return np.empty(0), np.empty(0, dtype="datetime64[ns]")
    stamps, equity, _positions, _targets = curve(account)
    if len(equity) < 2:
        return np.empty(0), np.empty(0, dtype="datetime64[ns]")
    ts = np.array([to_datetime64(s) for s in stamps], dtype="datetime64[ns]")
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(equity[:-1] > 0, equity[1:] / equity[:-1] - 1.0, 0.0)
    after = ts[1:] > to_datetime64(entry.forward_from) if entry.forward_from else np.ones(len(returns), bool)
    return returns[after], ts[1:][after]


def _still_sealed(tournament, agent):
    try:
        return sealed_span(agent)[0] <= tournament.window_start
    except EvaluationError:
        return False


def entrant_standing(tournament, entry):
    """Everything the standings keep of one entrant (a dict; nothing written)."""
    agent = entry.agent
    account = open_account_of(agent)
    version = account.version if account is not None and account.version is not None else agent.current_version
    bpy = agent.instrument.bars_per_year
    w_returns, w_ts, sealed, params, exam_window = window_evidence(tournament, agent, version)
    f_returns, f_ts = forward_evidence(entry, account)
    use_forward = len(f_returns) >= MIN_FORWARD_BARS
    returns = np.concatenate([w_returns, f_returns]) if use_forward else w_returns
    stamps = np.concatenate([w_ts, f_ts]) if use_forward else w_ts
    claim = _figures(w_returns, bpy)
    forward = {**_figures(f_returns, bpy), "trading": account is not None,
               "live": bool(account.live) if account is not None else False, "used_in_score": use_forward}
    forward["psr_vs_claim"] = forward_psr({"forward": forward, "window": claim})
    evidence = sharpe_stats(returns)
    return {
        "agent": agent, "version": version, "params": params, "sealed": sealed, "exam_window": exam_window,
        "returns": returns, "timestamps": stamps, "forward_returns": f_returns, "stats": evidence,
        "score": evidence.sr, "score_annualised": evidence.sr * math.sqrt(bpy),
        "window": {**claim, "still_sealed": _still_sealed(tournament, agent)},
        "forward": forward, "equity": _thin(np.cumprod(np.concatenate([[1.0], 1.0 + returns]))),
    }


def tournament_trials(rows):
    """{(template, instrument id, params key): Trial} of every distinct trial of the entrants, their
    traded versions included (an entrant that never iterated is still one of the strategies the
    tournament picks its leader from)."""
    union = {}
    for row in rows:
        agent = row["agent"]
        template = get_template(agent.strategy_template)
        _trials, by_key, _scores = agent_history(agent, template)
        for key, trial in by_key.items():
            union[(template.name, agent.instrument_id, key)] = trial
        traded = (template.name, agent.instrument_id, schema_key(template)(row["params"]))
        union.setdefault(traded, Trial(row["params"], None, None))
    return union


def tournament_summary(rows, trials):
    """The tournament-wide figures of ranked ``rows`` (see the module docstring)."""
    if not rows:
        return {"ranking_rule": RANKING_RULE, "min_forward_bars": MIN_FORWARD_BARS}
    leader = rows[0]
    stats = leader["stats"]
    pop = population(trials, stats.t)
    dsr = deflated_sharpe(stats.sr, stats.t, stats.skew, stats.kurt, max(pop.n_trials, 1), pop.variance)
    summary = {
        "ranking_rule": RANKING_RULE, "min_forward_bars": MIN_FORWARD_BARS,
        "leader": str(leader["agent"].pk), "leader_sharpe": stats.sr, "leader_bars": stats.t,
        "deflated_sharpe": dsr, "n_trials": pop.n_trials, "trials_with_sharpe": pop.n_with_sharpe,
        "trials_variance": pop.variance, "cross_variance": pop.cross_variance, "null_variance": pop.null_variance,
        "runner_up": None, "edge": None,
    }
    if len(rows) > 1:
        runner = rows[1]
        edge = leader_edge(leader, runner)
        summary.update(runner_up=str(runner["agent"].pk), edge=edge)
    return summary


def leader_edge(leader, runner):
    """The paired Sharpe test of the leader against the runner-up on their common timestamps."""
    _common, ia, ib = np.intersect1d(leader["timestamps"], runner["timestamps"], return_indices=True)
    result = sharpe_difference_test(leader["returns"][ia], runner["returns"][ib])
    return {"p_value": result.p_value, "z": result.z, "common_bars": result.t, "rho": result.rho,
            "leader_sharpe": result.sr_a, "runner_up_sharpe": result.sr_b}


def standings_compute(tournament):
    """(ranked rows, summary) of the tournament now; reads only (backtests, accounts, trials)."""
    entries = list(tournament.entries.select_related("agent", "agent__instrument", "agent__current_version"))
    rows = [entrant_standing(tournament, entry) for entry in entries]
    rows.sort(key=lambda row: (-row["score"], row["agent"].name))
    return rows, tournament_summary(rows, tournament_trials(rows))


def _record_readings(rows):
    for row in rows:
        start, end, n = row["exam_window"]
        seen = ExamReading.objects.filter(
            agent_id=row["agent"].pk, purpose=ExamPurpose.TOURNAMENT, params_key=params_digest(row["params"]),
            window_start=start, window_end=end).exists()
        if not seen:
            exam_record(agent_id=row["agent"].pk, purpose=ExamPurpose.TOURNAMENT, params=row["params"],
                        window=(start, end, n), score=row["sealed"].score, version_id=row["version"].pk)


def standings_recompute(tournament_id, *, now=None):
    """Recompute and store the tournament's standings, then raise the alerts they call for.

    The backtests run before the write; the write (standing rows, the summary, the leader, the
    exam readings) is one transaction under the tournament's row lock, so concurrent recomputes
    serialise and a reader sees one whole snapshot. Alerts are raised after it commits.
    Returns the tournament.
    """
    now = now or timezone.now()
    tournament = Tournament.objects.get(pk=tournament_id)
    marks = forward_marks([tournament.pk])[tournament.pk]
    rows, summary = standings_compute(tournament)
    summary["forward_marks"] = marks
    with transaction.atomic():
        locked = Tournament.objects.select_for_update().get(pk=tournament_id)
        previous_leader = locked.leader_id
        TournamentStanding.objects.filter(tournament=locked).delete()
        TournamentStanding.objects.bulk_create([
            TournamentStanding(
                tournament=locked, agent=row["agent"], rank=rank, score=row["score"],
                version_number=row["version"].number, window=row["window"], forward=row["forward"],
                equity=row["equity"], computed_at=now,
            ) for rank, row in enumerate(rows, start=1)
        ])
        _record_readings(rows)
        locked.summary = summary
        locked.leader = rows[0]["agent"] if rows else None
        locked.standings_at = now
        locked.save(update_fields=["summary", "leader", "standings_at"])
    standings_alerts(locked, rows, previous_leader_id=previous_leader)
    return locked


def forward_marks(tournament_ids):
    """{tournament id: {agent id: the last bar its open account processed (ISO), for entrants that trade}}."""
    marks = {pk: {} for pk in tournament_ids}
    accounts = PaperAccount.objects.filter(
        role=AccountRole.CHAMPION, closed_at__isnull=True, agent__tournament_entries__tournament_id__in=tournament_ids,
    ).values_list("agent__tournament_entries__tournament_id", "agent_id", "last_bar_timestamp")
    for tournament_id, agent_id, last_bar in accounts:
        marks[tournament_id][str(agent_id)] = last_bar.isoformat() if last_bar else None
    return marks


def standings_refresh_stale(*, limit=STALE_BATCH):
    """Send recompute_standings_task for active tournaments whose forward marks moved (the module
    docstring), or that have no standings yet; the ids sent."""
    active = list(Tournament.objects.filter(status=TournamentStatus.ACTIVE)
                  .order_by(models.F("standings_at").asc(nulls_first=True), "pk").values_list("pk", "summary"))
    marks = forward_marks([pk for pk, _summary in active])
    stale = [pk for pk, summary in active if (summary or {}).get("forward_marks") != marks[pk]][:limit]
    for pk in stale:
        task_messages.send(task_names.RECOMPUTE_STANDINGS, pk)
    return stale
