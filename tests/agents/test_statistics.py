"""Statistics: checked against the papers' worked examples, scipy references and hand-worked cases."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from agents.backtest import metrics
from agents.evaluation import statistics as st

# --- reference computations (scipy), independent of the module --------------------------------


def ref_moments(r):
    r = np.asarray(r, dtype=float)
    sr = r.mean() / r.std(ddof=1)
    return sr, sps.skew(r, bias=True), sps.kurtosis(r, fisher=False, bias=True)


def ref_psr(sr, t, skew, kurt, bench=0.0):
    return sps.norm.cdf((sr - bench) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def ref_sr0(n, v):
    g = np.euler_gamma
    return math.sqrt(v) * ((1 - g) * sps.norm.ppf(1 - 1 / n) + g * sps.norm.ppf(1 - 1 / (n * math.e)))


def ref_min_trl(sr, skew, kurt, bench, alpha):
    return 1 + (1 - skew * sr + (kurt - 1) / 4 * sr**2) * (sps.norm.ppf(1 - alpha) / (sr - bench)) ** 2


# --- the Deflated Sharpe Ratio paper's numerical example -----------------------------------------
# Bailey & López de Prado (2014), section "A numerical example": annualised SR 2.5 over 5 years of
# daily returns (T = 1,250), N = 100 trials whose annualised Sharpes have variance 1/2, skewness -3,
# kurtosis 10. The paper reports E[max SR] ≈ 0.1132 per day (≈ 1.79 annualised) and DSR ≈ 0.9004.
DAYS = 250
PAPER = {"sr": 2.5 / math.sqrt(DAYS), "t": 1250, "skew": -3.0, "kurt": 10.0, "n_trials": 100, "variance": 0.5 / DAYS}


def test_expected_max_sharpe_paper_example():
    sr0 = st.expected_max_sharpe(PAPER["n_trials"], PAPER["variance"])
    assert sr0 == pytest.approx(0.1132, abs=5e-4)
    assert sr0 * math.sqrt(DAYS) == pytest.approx(1.79, abs=0.01)
    assert sr0 == pytest.approx(ref_sr0(100, 0.5 / DAYS), rel=1e-9)


def test_deflated_sharpe_paper_example():
    dsr = st.deflated_sharpe(**PAPER)
    assert dsr == pytest.approx(0.9004, abs=1e-3)
    sr0 = ref_sr0(100, 0.5 / DAYS)
    assert dsr == pytest.approx(ref_psr(PAPER["sr"], 1250, -3.0, 10.0, sr0), rel=1e-9)
    assert type(dsr) is float


@pytest.mark.parametrize(("n", "rel"), [(10, 0.025), (100, 0.01), (1000, 0.005)])
def test_expected_max_sharpe_approximates_the_exact_expected_maximum(n, rel):
    # SR0 approximates E[max of N iid N(0, V)] = sqrt(V) * integral of x N phi(x) Phi(x)^(N-1) dx,
    # integrated exactly here; the approximation's error shrinks as N grows (2.3% at N = 10).
    exact, _ = integrate.quad(lambda x: x * n * sps.norm.pdf(x) * sps.norm.cdf(x) ** (n - 1), -10, 10)
    assert st.expected_max_sharpe(n, 0.04) == pytest.approx(0.2 * exact, rel=rel)


def test_expected_max_sharpe_edges():
    assert st.expected_max_sharpe(1, 0.5) == 0.0
    assert st.expected_max_sharpe(0, 0.5) == 0.0
    assert st.expected_max_sharpe(50, 0.0) == 0.0
    # 1 - 1/N rounds to 1 in floats; the tail quantiles (scipy's isf) stay exact.
    g = np.euler_gamma
    huge = (1 - g) * sps.norm.isf(1e-30) + g * sps.norm.isf(1e-30 / math.e)
    assert st.expected_max_sharpe(1e30, 1.0) == pytest.approx(huge, rel=1e-9)
    assert st.expected_max_sharpe(10, 1.0) < st.expected_max_sharpe(100, 1.0)  # more trials, more luck
    with pytest.raises(ValueError, match="n_trials"):
        st.expected_max_sharpe(math.inf, 1.0)
    with pytest.raises(ValueError, match="variance"):
        st.expected_max_sharpe(10, math.nan)
    # One trial: nothing to deflate, DSR is PSR against 0.
    assert st.deflated_sharpe(0.1, 500, 0.0, 3.0, 1, 0.01) == st.probabilistic_sharpe(0.1, 500, 0.0, 3.0)


# --- sharpe_stats and PSR ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_sharpe_stats_and_psr_match_scipy(seed):
    rng = np.random.default_rng(seed)
    r = rng.standard_t(df=5, size=200 + 100 * seed) * 0.01 + 0.0005 * (seed - 2)
    if seed % 2:
        r = np.where(r < -0.01, 2 * r, r)  # fatter left tail: negative skew
    s = st.sharpe_stats(list(r))
    sr, skew, kurt = ref_moments(r)
    assert (s.sr, s.skew, s.kurt, s.t) == (pytest.approx(sr, rel=1e-10), pytest.approx(skew, rel=1e-9),
                                           pytest.approx(kurt, rel=1e-9), len(r))
    for bench in (0.0, 0.02, -0.05):
        psr = st.probabilistic_sharpe(s.sr, s.t, s.skew, s.kurt, sr_benchmark=bench)
        assert psr == pytest.approx(ref_psr(sr, len(r), skew, kurt, bench), rel=1e-9, abs=1e-12)
    # The backtest metric delegates to the same formula with its own moments.
    assert metrics.probabilistic_sharpe_ratio(r) == pytest.approx(
        st.probabilistic_sharpe(s.sr, s.t, s.skew, s.kurt), rel=1e-12, abs=1e-15)


def test_sharpe_stats_degenerate_series():
    assert st.sharpe_stats([]) == st.SharpeStats(0.0, 0, 0.0, 3.0)
    assert st.sharpe_stats([0.01]) == st.SharpeStats(0.0, 1, 0.0, 3.0)
    assert st.sharpe_stats([0.0] * 30) == st.SharpeStats(0.0, 30, 0.0, 3.0)
    assert st.sharpe_stats([0.001] * 30) == st.SharpeStats(0.0, 30, 0.0, 3.0)  # float dust is not risk
    s = st.sharpe_stats(np.array([0.01, -0.01, 0.02, 0.0]))
    assert all(type(v) is float for v in (s.sr, s.skew, s.kurt)) and type(s.t) is int
    with pytest.raises(ValueError, match="returns"):
        st.sharpe_stats([0.01, math.nan, 0.0])
    with pytest.raises(ValueError, match="1-D"):
        st.sharpe_stats([[0.01, 0.02], [0.0, 0.01]])


def test_psr_edges():
    assert st.probabilistic_sharpe(0.2, 2, 0.0, 3.0) == 0.0  # fewer than 3 returns
    assert st.probabilistic_sharpe(0.0, 100, 0.0, 3.0) == 0.5  # exactly at the benchmark
    assert st.probabilistic_sharpe(math.nan, 100, 0.0, 3.0) == 0.0
    # Two-point distribution: 1 - g3 SR + (g4 - 1)/4 SR^2 can reach 0; PSR takes its limit.
    assert st.probabilistic_sharpe(1.0, 10, 2.0, 5.0) == 1.0
    assert st.probabilistic_sharpe(1.0, 10, 2.0, 5.0, sr_benchmark=1.5) == 0.0
    # Negative skew and fat tails lower the confidence in the same Sharpe.
    assert st.probabilistic_sharpe(0.1, 250, -3.0, 10.0) < st.probabilistic_sharpe(0.1, 250, 0.0, 3.0)


# --- minimum track record length ---------------------------------------------------------------


@pytest.mark.parametrize(("sr", "skew", "kurt", "bench", "alpha"), [
    (0.1, 0.0, 3.0, 0.0, 0.05), (0.05, -1.5, 8.0, 0.0, 0.05), (0.2, 0.5, 4.0, 0.1, 0.01),
    (0.158, -3.0, 10.0, 0.1132, 0.1),
])
def test_min_track_record_length_matches_reference_and_defines_psr(sr, skew, kurt, bench, alpha):
    trl = st.min_track_record_length(sr, skew, kurt, sr_benchmark=bench, alpha=alpha)
    assert trl == pytest.approx(ref_min_trl(sr, skew, kurt, bench, alpha), rel=1e-9)
    # Its defining property: a track record of exactly MinTRL returns gives PSR = 1 - alpha.
    assert st.probabilistic_sharpe(sr, trl, skew, kurt, sr_benchmark=bench) == pytest.approx(1 - alpha, abs=1e-12)


def test_min_track_record_length_normal_case_by_hand():
    # Normal returns, SR 0.1, alpha 0.05: 1 + (1 + 2/4 x 0.01) x (1.6448536 / 0.1)^2 = 272.9...
    assert st.min_track_record_length(0.1, 0.0, 3.0) == pytest.approx(1 + 1.005 * 16.448536269514722**2, rel=1e-12)


def test_min_track_record_length_edges():
    assert st.min_track_record_length(0.05, 0.0, 3.0, sr_benchmark=0.05) == math.inf
    assert st.min_track_record_length(-0.1, 0.0, 3.0) == math.inf
    assert st.min_track_record_length(math.nan, 0.0, 3.0) == math.inf
    for alpha in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="alpha"):
            st.min_track_record_length(0.1, 0.0, 3.0, alpha=alpha)


# --- probability of backtest overfitting -------------------------------------------------------


def test_pbo_hand_case_two_blocks():
    # S = 2: blocks are rows 0-1 and rows 2-3. Per block, a pair (m - d, m + d) has SR = m / (d sqrt 2).
    #            block 0          block 1          SR block 0   SR block 1
    # trial A:   .01, .03         -.02, .00        +sqrt(2)     -1/sqrt(2)
    # trial B:   .00, .02         .01, .03         +1/sqrt(2)   +sqrt(2)
    # trial C:   constant .01                      0            0            (sd = 0)
    # IS = block 0: n* = A; its OOS SR -0.707 is the worst of 3: rank 1, ω = 1/4, λ = log(1/3) < 0.
    # IS = block 1: n* = B; its OOS SR 0.707 beats C (0), loses to A: rank 2, ω = 2/4, λ = 0 (counts).
    x = np.array([[0.01, 0.00, 0.01], [0.03, 0.02, 0.01], [-0.02, 0.01, 0.01], [0.00, 0.03, 0.01]])
    res = st.pbo_cscv(x, n_blocks=2)
    assert (res.pbo, res.n_combinations, res.n_trials, res.n_blocks) == (1.0, 2, 3, 2)
    assert res.logits == pytest.approx((math.log(1 / 3), 0.0), abs=1e-12)
    assert res.prob_oos_loss == 0.5  # only the first selection lost money out of sample
    # The remainder rows are dropped at the start: an old wild row changes nothing.
    res2 = st.pbo_cscv(np.vstack([[9.0, -9.0, 3.0], x]), n_blocks=2)
    assert (res2.pbo, res2.logits, res2.rows_used) == (res.pbo, res.logits, 4)


def test_pbo_hand_case_ties_get_average_ranks():
    #            block 0       block 1       SR 0      SR 1
    # trial A:   .01, .03      .01, .03      1.414     1.414
    # trial B:   all 0                       0         0
    # trial C:   constant .02                0         0          (sd = 0)
    # trial D:   .00, .02      -.03, -.01    0.707     -1.414
    # trial E:   .00, .02      .01, .03      0.707     1.414
    # IS = block 0: n* = A. OOS: B, C, D below, E tied with A: rank 3 + (2 + 1)/2 = 4.5 of 5,
    #   ω = 4.5 / 6 = 3/4, λ = log 3.
    # IS = block 1: A and E tie at the top; the first column (A) is n*. OOS: A best, rank 5,
    #   ω = 5/6, λ = log 5.
    x = np.array([
        [0.01, 0.0, 0.02, 0.00, 0.00],
        [0.03, 0.0, 0.02, 0.02, 0.02],
        [0.01, 0.0, 0.02, -0.03, 0.01],
        [0.03, 0.0, 0.02, -0.01, 0.03],
    ])
    res = st.pbo_cscv(x.tolist(), n_blocks=2)
    assert res.logits == pytest.approx((math.log(3), math.log(5)), abs=1e-12)
    assert (res.pbo, res.prob_oos_loss, res.n_trials) == (0.0, 0.0, 5)


def _brute_force_pbo(x, s):
    """CSCV straight from the definition: slice rows, compute Sharpes, rank with scipy."""
    t, n = x.shape
    x = x[t - (t // s) * s:]
    blocks = np.array_split(x, s)
    below = 0
    combos = list(itertools.combinations(range(s), s // 2))
    logits = []
    for chosen in combos:
        is_rows = np.vstack([blocks[i] for i in chosen])
        oos_rows = np.vstack([blocks[i] for i in range(s) if i not in chosen])
        best = int(np.argmax(is_rows.mean(0) / is_rows.std(0, ddof=1)))
        ranks = sps.rankdata(oos_rows.mean(0) / oos_rows.std(0, ddof=1))
        omega = ranks[best] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        below += logits[-1] <= 0
    return below / len(combos), logits


def test_pbo_matches_brute_force_definition():
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 0.01, size=(203, 7)) + rng.normal(0.0, 0.002, size=7)
    pbo, logits = _brute_force_pbo(x, 6)
    res = st.pbo_cscv(x, n_blocks=6)
    assert res.n_combinations == 20 and res.rows_used == 198
    assert res.pbo == pbo
    assert res.logits == pytest.approx(tuple(logits), rel=1e-9)


def test_pbo_is_about_one_half_on_pure_noise():
    values = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        values.append(st.pbo_cscv(rng.normal(0.0, 0.01, size=(2000, 50)), n_blocks=10).pbo)
    assert np.mean(values) == pytest.approx(0.5, abs=0.12)


def test_pbo_is_near_zero_with_a_real_edge():
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 0.01, size=(2000, 50))
    x[:, 17] += 0.002  # per-bar Sharpe 0.2 among zero-skill trials
    res = st.pbo_cscv(x, n_blocks=10)
    assert res.pbo < 0.1
    assert res.prob_oos_loss < 0.1
    assert res.n_combinations == 252 and len(res.logits) == 252
    assert all(type(v) is float and math.isfinite(v) for v in res.logits)


@pytest.mark.parametrize(("matrix", "blocks", "message"), [
    (np.zeros((100, 1)), 10, "at least 2 trials"),
    (np.zeros(100), 10, "2-D"),
    (np.zeros((100, 3)), 7, "even"),
    (np.zeros((100, 3)), 0, "even"),
    (np.zeros((100, 3)), 22, "even"),
    (np.zeros((100, 3)), 2.0, "integer"),
    (np.zeros((3, 3)), 2, "too few"),
    (np.full((100, 3), np.nan), 2, "finite"),
])
def test_pbo_rejects_bad_input(matrix, blocks, message):
    with pytest.raises(ValueError, match=message):
        st.pbo_cscv(matrix, n_blocks=blocks)


# --- paired Sharpe difference test -------------------------------------------------------------


def _pairs(rng, n, t, mean_a, mean_b, rho):
    z1, z2 = rng.standard_normal((2, n, t))
    return mean_a + z1, mean_b + rho * z1 + math.sqrt(1 - rho * rho) * z2


def test_sharpe_difference_z_matches_memmel_formula_from_scipy_inputs():
    rng = np.random.default_rng(21)
    a, b = _pairs(rng, 1, 300, 0.08, 0.01, 0.4)
    a, b = a[0] * 0.01, b[0] * 0.02
    sr_a, sr_b = a.mean() / a.std(ddof=1), b.mean() / b.std(ddof=1)
    rho = sps.pearsonr(a, b).statistic
    theta = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / 300
    z = (sr_a - sr_b) / math.sqrt(theta)
    res = st.sharpe_difference_test(list(a), b)
    assert (res.sr_a, res.sr_b, res.rho) == (pytest.approx(sr_a, rel=1e-10), pytest.approx(sr_b, rel=1e-10),
                                             pytest.approx(rho, rel=1e-10))
    assert res.z == pytest.approx(z, rel=1e-9)
    assert res.p_value == pytest.approx(sps.norm.sf(z), rel=1e-9)
    assert res.t == 300
    swapped = st.sharpe_difference_test(b, a)
    assert swapped.z == pytest.approx(-res.z, rel=1e-12)
    assert swapped.p_value + res.p_value == pytest.approx(1.0, abs=1e-12)


def test_sharpe_difference_false_positive_rate_is_nominal():
    rng = np.random.default_rng(2024)
    a, b = _pairs(rng, 2000, 500, 0.05, 0.05, 0.5)
    rejected = np.mean([st.sharpe_difference_test(a[i], b[i]).p_value < 0.05 for i in range(2000)])
    assert 0.03 <= rejected <= 0.07


def test_sharpe_difference_has_power_on_a_real_difference():
    rng = np.random.default_rng(99)
    a, b = _pairs(rng, 300, 500, 0.15, 0.0, 0.5)  # expected z ≈ 0.15 / sqrt(1.011 / 500) ≈ 3.3
    rejected = np.mean([st.sharpe_difference_test(a[i], b[i]).p_value < 0.05 for i in range(300)])
    assert rejected > 0.85


def test_sharpe_difference_degenerate_cases_give_no_evidence():
    r = [0.01, -0.02, 0.03, 0.0, 0.01]
    for a, b in ((r[:2], r[:2][::-1]), (r, list(r)), ([0.0] * 5, [0.001] * 5)):
        res = st.sharpe_difference_test(a, b)
        assert (res.z, res.p_value) == (0.0, 1.0)
    # b is a scaled copy of a: same Sharpe, rho = 1, theta = 0: one strategy, no difference.
    res = st.sharpe_difference_test(r, [2 * v for v in r])
    assert (res.z, res.p_value) == (0.0, 1.0)
    # One flat series: its SR is 0 and rho 0, the formula still applies.
    res = st.sharpe_difference_test(r, [0.0] * 5)
    sr_a = np.mean(r) / np.std(r, ddof=1)
    assert (res.sr_b, res.rho) == (0.0, 0.0)
    assert res.z == pytest.approx(sr_a / math.sqrt((2 + 0.5 * sr_a**2) / 5), rel=1e-12)
    with pytest.raises(ValueError, match="same length"):
        st.sharpe_difference_test(r, r[:4])
    with pytest.raises(ValueError, match="returns_a"):
        st.sharpe_difference_test([math.inf] * 5, r)


# --- proportion_drop_test and sharpe_standard_error (references: scipy) ------------------------


@pytest.mark.parametrize("a, n1, b, n2", [(30, 50, 18, 50), (12, 40, 20, 45), (70, 100, 69, 100)])
def test_proportion_drop_test_matches_the_pearson_chi_square(a, n1, b, n2):
    """z^2 of the pooled two-proportion test is Pearson's chi-square without continuity correction."""
    chi2 = sps.chi2_contingency([[a, n1 - a], [b, n2 - b]], correction=False)[0]
    z = math.copysign(math.sqrt(chi2), a / n1 - b / n2)
    assert st.proportion_drop_test(a, n1, b, n2) == pytest.approx(sps.norm.sf(z), rel=1e-9)


def test_proportion_drop_test_has_no_evidence_without_data():
    assert st.proportion_drop_test(0, 0, 3, 5) == 1.0
    assert st.proportion_drop_test(5, 5, 4, 4) == 1.0


def test_proportion_drop_false_positive_rate_is_about_nominal():
    rng = np.random.default_rng(11)
    n = 60
    wins = rng.binomial(n, 0.45, size=(4000, 2))
    p = np.array([st.proportion_drop_test(w1, n, w2, n) for w1, w2 in wins])
    assert 0.03 <= float(np.mean(p <= 0.05)) <= 0.07


def test_sharpe_standard_error_matches_the_spread_of_sharpe_estimates():
    rng = np.random.default_rng(5)
    t, true_sr = 500, 0.1
    estimates = []
    for _ in range(3000):
        r = rng.normal(true_sr, 1.0, t)
        estimates.append(r.mean() / r.std(ddof=1))
    se = st.sharpe_standard_error(true_sr, t, 0.0, 3.0)
    assert se == pytest.approx(float(np.std(estimates)), rel=0.05)
