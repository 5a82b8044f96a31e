"""The lab's statistics, defined once: PSR, deflated Sharpe, MinTRL, PBO (CSCV), paired Sharpe test.

Pure numpy + the standard library (``statistics.NormalDist`` for Phi and Phi^-1); no Django, no
scipy. Every Sharpe ratio here is per period (per bar, NOT annualised): SR = mean / sd with the
sample standard deviation (ddof=1). Skewness g3 = m3 / m2^1.5 and kurtosis g4 = m4 / m2^2
(non-excess: 3 for a normal) use the population central moments m_p = sum((r_i - mean)^p) / T.
To convert an annualised Sharpe S_a measured on k periods a year: SR = S_a / sqrt(k), and a
variance of annualised Sharpes V_a: V = V_a / k.

References
- Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2):
  probabilistic Sharpe ratio (PSR) and minimum track record length (MinTRL).
- Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5): DSR, SR0.
- Bailey, Borwein, López de Prado & Zhu (2015/2017), "The Probability of Backtest Overfitting",
  Journal of Computational Finance 20(4): CSCV and PBO.
- Jobson & Korkie (1981), "Performance Hypothesis Testing with the Sharpe and Treynor Measures",
  Journal of Finance 36(4), with Memmel (2003), "Performance Hypothesis Testing with the Sharpe
  Ratio", Finance Letters 1: the paired test of two Sharpe ratios.

All results are plain Python floats (finite, except MinTRL's documented ``math.inf``).
"""

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from agents.backtest import kernel

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
# sd counts as 0 below this fraction of |mean|: the float dust a constant series leaves
# (same rule as agents.backtest.metrics, so both report 0 for a strategy that never moved).
_DUST = 1e-12
# Largest CSCV split accepted: C(20, 10) = 184,756 combinations. C(S, S/2) grows ~ 2^S / sqrt(S),
# so a larger S would turn one gate reading into minutes of CPU.
MAX_PBO_BLOCKS = 20
# PBO: Sharpes this close (relative, plus as much absolute) are tied. Identical trials (the same
# parameters twice) reach the same Sharpe through different float roundings; 1e-9 is far below
# any difference a Sharpe estimate can resolve.
_TIE = 1e-9


def _series(values, name):
    """``values`` as a 1-D finite float64 array, or ValueError naming the argument."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of returns, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: every return must be a finite number")
    return arr


def _finite_or_raise(name, *values):
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be a finite number, got {value!r}")


# --- one series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SharpeStats:
    """Per-period (not annualised) figures of one return series."""

    sr: float  # mean / sd (ddof=1); 0.0 when T < 2 or sd == 0
    t: int  # number of returns
    skew: float  # g3 = m3 / m2**1.5 (population central moments); 0 when sd == 0
    kurt: float  # g4 = m4 / m2**2, non-excess (normal = 3); 3 when sd == 0


def sharpe_stats(returns) -> SharpeStats:
    """SR = mean / sd (ddof=1), g3 = m3 / m2^1.5, g4 = m4 / m2^2 of ``returns``.

    m_p = sum((r_i - mean)^p) / T. When T < 2 or sd is 0 (or float dust below 1e-12 x |mean|)
    the series carries no risk to measure: SR = 0, skew = 0, kurt = 3 (the normal's values).
    """
    r = _series(returns, "returns")
    return sharpe_stats_rows(r[None, :])[0]


def sharpe_stats_rows(matrix):
    """:func:`sharpe_stats` of every row of a (rows x T) matrix; the moments in one compiled pass
    (the same one as the backtest metrics, :func:`agents.backtest.kernel.central_moments`)."""
    rows, t = matrix.shape
    if t < 2:
        return [SharpeStats(0.0, t, 0.0, 3.0) for _ in range(rows)]
    sums = np.empty((rows, 5))
    kernel.central_moments(kernel.plain(matrix), sums)
    return sharpe_stats_of_moments(sums, t)


def sharpe_stats_of_moments(sums, t):
    """:func:`sharpe_stats` of rows of T returns from their moment sums (columns mean, sum d^2, d^3,
    d^4, ... as :func:`agents.backtest.kernel.central_moments` writes them), e.g. the ones the
    metrics already computed (``compute_metrics_windows(summaries=...)``)."""
    if t < 2:
        return [SharpeStats(0.0, t, 0.0, 3.0) for _ in range(len(sums))]
    out = []
    for mean, s2, s3, s4, *_rest in sums.tolist():
        m2 = s2 / t
        sd = math.sqrt(m2 * t / (t - 1))
        if sd <= _DUST * abs(mean) or m2 <= 0.0:
            out.append(SharpeStats(0.0, t, 0.0, 3.0))
        else:
            out.append(SharpeStats(mean / sd, t, s3 / t / m2**1.5, s4 / t / (m2 * m2)))
    return out


def probabilistic_sharpe(sr, t, skew, kurt, sr_benchmark=0.0) -> float:
    """Probabilistic Sharpe ratio (Bailey & López de Prado 2012): P(true SR > SR*).

        PSR(SR*) = Phi( (SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) )

    SR is the per-period Sharpe of T returns, g3 their skewness, g4 their non-excess kurtosis.
    0 when T < 3 (too few returns to estimate the higher moments) and, as "no evidence", when an
    input is not finite. The variance term is positive for every real distribution except
    two-point ones, where it can reach 0: then PSR is 1 if SR > SR* else 0 (the limit).
    """
    if t < 3 or not (math.isfinite(sr) and math.isfinite(skew) and math.isfinite(kurt)):
        return 0.0
    if not math.isfinite(sr_benchmark):
        return 0.0
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    diff = sr - sr_benchmark
    if not var > 0.0:
        return 1.0 if diff > 0 else 0.0
    return _NORMAL.cdf(diff * math.sqrt(t - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials, variance) -> float:
    """Expected maximum Sharpe of N independent zero-skill trials (Bailey & López de Prado 2014).

        SR0 = sqrt(V) * ( (1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)) )

    gamma the Euler-Mascheroni constant, V the variance of the trials' (per-period) Sharpe ratios
    and N the number of trials (a float is accepted: an effective number of independent trials).
    0 when N <= 1 or V <= 0 (nothing was selected from). Phi^-1(1 - q) is computed as
    -Phi^-1(q), which stays exact when 1 - 1/N would round to 1.
    """
    _finite_or_raise("n_trials", n_trials)
    _finite_or_raise("variance", variance)
    if n_trials <= 1 or variance <= 0:
        return 0.0
    z1 = -_NORMAL.inv_cdf(1.0 / n_trials)
    z2 = -_NORMAL.inv_cdf(1.0 / (n_trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(sr, t, skew, kurt, n_trials, variance) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014): DSR = PSR(SR* = SR0).

    SR0 = expected_max_sharpe(n_trials, variance): the Sharpe the best of N zero-skill trials
    would show by luck. DSR is the probability that the selected strategy's true Sharpe beats it.
    """
    return probabilistic_sharpe(sr, t, skew, kurt, expected_max_sharpe(n_trials, variance))


def min_track_record_length(sr, skew, kurt, sr_benchmark=0.0, alpha=0.05) -> float:
    """Minimum track record length (Bailey & López de Prado 2012), in periods.

        MinTRL = 1 + (1 - g3 SR + (g4 - 1) / 4 SR^2) * ( Phi^-1(1 - alpha) / (SR - SR*) )^2

    The number of returns T at which PSR(SR*) = 1 - alpha for the observed SR, g3, g4. math.inf
    when SR <= SR* (no track record is long enough) or an input is not finite. When the variance
    term is not positive (two-point distributions only) PSR is already 1 at T = 3: returns 3.0.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must be strictly between 0 and 1, got {alpha!r}")
    if not all(math.isfinite(x) for x in (sr, skew, kurt, sr_benchmark)) or sr <= sr_benchmark:
        return math.inf
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if not var > 0.0:
        return 3.0
    ratio = _NORMAL.inv_cdf(1.0 - alpha) / (sr - sr_benchmark)
    value = 1.0 + var * ratio * ratio
    return value if math.isfinite(value) else math.inf


# --- probability of backtest overfitting ------------------------------------------------------


@dataclass(frozen=True)
class PBOResult:
    pbo: float  # share of combinations whose IS-best trial ranks in the OOS bottom half (λ <= 0)
    n_combinations: int  # C(S, S/2)
    n_trials: int  # N
    n_blocks: int  # S
    logits: tuple  # λ per combination, in itertools.combinations order of the IS blocks
    prob_oos_loss: float  # share of combinations where the IS-best trial's OOS Sharpe is < 0
    rows_used: int  # S x floor(T / S): the newest rows (the oldest remainder is dropped)


def _block_sharpe(s, ss, n, shift):
    """Per-column Sharpe from sums ``s`` and sums of squares ``ss`` of (x - shift) over n rows.

    mean = shift + s / n, var = (ss - s^2 / n) / (n - 1). Centring on the column mean first keeps
    the subtraction well conditioned; var under 1e-10 x ss / (n - 1) is cancellation dust (a trial
    that did not move in this window), so its Sharpe is 0 like any zero-variance trial.
    """
    mean_d = s / n
    var = (ss - s * mean_d) / (n - 1)
    ok = var > 1e-10 * ss / (n - 1)
    sd = np.sqrt(np.where(ok, var, 1.0))
    return np.where(ok, (shift + mean_d) / sd, 0.0)


def pbo_cscv(returns_matrix, n_blocks=10) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    Bailey, Borwein, López de Prado & Zhu (2015). ``returns_matrix`` is T x N: per-bar returns of N
    trials (columns) on the same T bars. The T rows are cut into S = ``n_blocks`` contiguous equal
    blocks (the T mod S oldest rows are dropped). For each of the C(S, S/2) ways to pick S/2
    blocks as in-sample (IS), the other S/2 are out-of-sample (OOS); with per-period Sharpe
    SR = mean / sd (ddof=1; 0 when sd = 0) as the metric:

        n*  = argmax_n SR_IS(n)                       (first column on ties)
        ω   = rank of SR_OOS(n*) among the N OOS Sharpes / (N + 1)
              (rank 1 = worst ... N = best; ties get their average rank; Sharpes within
              1e-9 x (1 + |SR|) of each other count as tied)
        λ   = log(ω / (1 - ω))
        PBO = #{combinations with λ <= 0} / C(S, S/2)

    Cost: per-block sums and sums of squares (S x N; counts are equal by construction) are computed
    once; each combination adds S/2 of them (a 0/1 matrix product), so the data is read once
    whatever S is.
    """
    x = np.asarray(returns_matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"returns_matrix: expected a 2-D T x N array (bars x trials), got shape {x.shape}")
    t, n = x.shape
    if n < 2:
        raise ValueError(f"returns_matrix: PBO needs at least 2 trials (columns), got {n}")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int | np.integer):
        raise ValueError(f"n_blocks: must be an integer, got {n_blocks!r}")
    s = int(n_blocks)
    if s < 2 or s % 2 or s > MAX_PBO_BLOCKS:
        raise ValueError(f"n_blocks: must be an even integer between 2 and {MAX_PBO_BLOCKS}, got {s}")
    length = t // s
    half_rows = length * (s // 2)
    if half_rows < 2:
        raise ValueError(
            f"returns_matrix: {t} rows are too few for {s} blocks (each half needs at least 2 rows)"
        )
    if not np.isfinite(x).all():
        raise ValueError("returns_matrix: every return must be a finite number")

    x = x[t - length * s :]
    shift = x.mean(axis=0)
    blocks = (x - shift).reshape(s, length, n)
    block_sum = blocks.sum(axis=1)  # S x N
    block_ss = np.einsum("sln,sln->sn", blocks, blocks)  # S x N
    total_sum, total_ss = block_sum.sum(axis=0), block_ss.sum(axis=0)

    combos = list(itertools.combinations(range(s), s // 2))
    pick = np.zeros((len(combos), s))
    for row, chosen in enumerate(combos):
        pick[row, list(chosen)] = 1.0

    logits, losses, below = [], 0, 0
    chunk = max(1, (1 << 18) // n)  # bound the C x N temporaries at ~2 MB each
    for lo in range(0, len(combos), chunk):
        p = pick[lo : lo + chunk]
        is_sum, is_ss = p @ block_sum, p @ block_ss
        is_sr = _block_sharpe(is_sum, is_ss, half_rows, shift)
        oos_sr = _block_sharpe(total_sum - is_sum, total_ss - is_ss, half_rows, shift)
        is_max = is_sr.max(axis=1, keepdims=True)
        best = np.argmax(is_sr >= is_max - _TIE * (1.0 + np.abs(is_max)), axis=1)
        chosen_oos = oos_sr[np.arange(len(p)), best][:, None]
        tol = _TIE * (1.0 + np.abs(chosen_oos))
        less = np.count_nonzero(oos_sr < chosen_oos - tol, axis=1)
        ties = np.count_nonzero(np.abs(oos_sr - chosen_oos) <= tol, axis=1)  # includes n* itself
        rank = less + (ties + 1) / 2.0
        omega = rank / (n + 1)
        logits.extend(np.log(omega / (1.0 - omega)).tolist())
        below += int(np.count_nonzero(2.0 * rank <= n + 1))  # λ <= 0 exactly, no log rounding
        losses += int(np.count_nonzero(chosen_oos[:, 0] < 0))

    total = len(combos)
    return PBOResult(
        pbo=below / total,
        n_combinations=total,
        n_trials=n,
        n_blocks=s,
        logits=tuple(float(v) for v in logits),
        prob_oos_loss=losses / total,
        rows_used=length * s,
    )


# --- paired test of two Sharpe ratios ---------------------------------------------------------


@dataclass(frozen=True)
class SharpeDiffResult:
    z: float
    p_value: float  # one-sided, H1: SR_a > SR_b
    sr_a: float
    sr_b: float
    rho: float
    t: int


def sharpe_difference_test(returns_a, returns_b) -> SharpeDiffResult:
    """Paired test that A's Sharpe exceeds B's on the same bars: Jobson & Korkie (1981), Memmel (2003).

        z     = (SR_a - SR_b) / sqrt(theta)
        theta = (2 - 2 rho + 1/2 (SR_a^2 + SR_b^2 - 2 SR_a SR_b rho^2)) / T
        p     = 1 - Phi(z)                       (one-sided, H1: SR_a > SR_b)

    SR per period (mean / sd, ddof=1), rho the Pearson correlation of the two series, T the
    common length. The asymptotic variance assumes iid normal returns. No evidence (z = 0, p = 1)
    when T < 3, the series are identical, both have zero variance, or T theta <= 1e-12. A
    series with zero variance (and the other not) has SR 0 and rho 0.
    """
    a = _series(returns_a, "returns_a")
    b = _series(returns_b, "returns_b")
    t = len(a)
    if len(b) != t:
        raise ValueError(f"returns_b: must have the same length as returns_a ({t}), got {len(b)}")
    if t < 3:
        return SharpeDiffResult(0.0, 1.0, 0.0, 0.0, 0.0, t)
    mean_a, mean_b = float(a.mean()), float(b.mean())
    da, db = a - mean_a, b - mean_b
    sd_a = math.sqrt(float(da @ da) / (t - 1))
    sd_b = math.sqrt(float(db @ db) / (t - 1))
    flat_a, flat_b = sd_a <= _DUST * abs(mean_a), sd_b <= _DUST * abs(mean_b)
    sr_a = 0.0 if flat_a else mean_a / sd_a
    sr_b = 0.0 if flat_b else mean_b / sd_b
    if flat_a and flat_b:
        return SharpeDiffResult(0.0, 1.0, 0.0, 0.0, 0.0, t)
    rho = 0.0 if flat_a or flat_b else min(1.0, max(-1.0, float(da @ db) / ((t - 1) * sd_a * sd_b)))
    if np.array_equal(a, b):
        return SharpeDiffResult(0.0, 1.0, sr_a, sr_b, rho, t)
    spread = 2.0 - 2.0 * rho + 0.5 * (sr_a * sr_a + sr_b * sr_b - 2.0 * sr_a * sr_b * rho * rho)
    # rho = 1 with equal Sharpes (b a scaled copy of a): one strategy twice, and rounding leaves
    # only dust in the bracket (its scale is ~1; any real difference leaves >= (dSR)^2 / 2).
    if not spread > 1e-12:
        return SharpeDiffResult(0.0, 1.0, sr_a, sr_b, rho, t)
    z = (sr_a - sr_b) / math.sqrt(spread / t)
    # Phi(-z) rather than 1 - Phi(z): keeps small p-values instead of rounding them to 0.
    return SharpeDiffResult(z, _NORMAL.cdf(-z), sr_a, sr_b, rho, t)


# --- a fall in a rate ---------------------------------------------------------------------------


def proportion_drop_test(wins_before, n_before, wins_now, n_now) -> float:
    """One-sided p-value that the rate fell: the pooled two-proportion z-test.

        p1 = wins_before / n_before,  p2 = wins_now / n_now,  p = (wins_before + wins_now) / (n_before + n_now)
        z  = (p1 - p2) / sqrt(p (1 - p) (1 / n_before + 1 / n_now))
        p-value = 1 - Phi(z)                      (H1: the rate now is below the rate before)

    No evidence (1.0) when either sample is empty or the pooled rate is 0 or 1.
    """
    if n_before <= 0 or n_now <= 0:
        return 1.0
    pooled = (wins_before + wins_now) / (n_before + n_now)
    if not 0.0 < pooled < 1.0:
        return 1.0
    z = (wins_before / n_before - wins_now / n_now) / math.sqrt(pooled * (1 - pooled) * (1 / n_before + 1 / n_now))
    return _NORMAL.cdf(-z)


def sharpe_standard_error(sr, t, skew, kurt) -> float:
    """Standard error of a per-period Sharpe estimate (Lo 2002; Mertens 2002 for non-normal returns):
    sqrt((1 - g3 SR + (g4 - 1) / 4 SR^2) / (T - 1)); inf when T < 2."""
    if t < 2:
        return math.inf
    return math.sqrt(max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 0.0) / (t - 1))
