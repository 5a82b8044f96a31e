"""Strategy templates, their registry and the vectorised indicators (pure numpy, no database)."""

import csv
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agents.market.bars import Bars
from agents.strategies import indicators as ind
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import UnknownTemplateError, all_templates, get_template, template_choices

SPX_CSV = Path(__file__).resolve().parents[2] / "agents" / "market" / "sample_data" / "SPX_daily_1999_2018.csv"
TEMPLATES = all_templates()
TEMPLATE_IDS = [t.key for t in TEMPLATES]
EXPECTED_KEYS = {"sma_crossover", "ema_macd", "rsi_reversion", "bollinger_reversion", "donchian_breakout"}
HYPOTHESIS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.filter_too_much]
)


# ---------------------------------------------------------------- helpers


@cache
def spx_bars():
    with SPX_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = {c: np.array([float(r[c]) for r in rows]) for c in ("open", "high", "low", "close", "volume")}
    return Bars.from_columns(np.array([r["timestamp"] for r in rows], dtype="datetime64[ns]"), **columns)


def random_bars(size, seed, decimals=None, level=100.0, vol=0.01):
    """A random-walk OHLC series; rounding to `decimals` makes ties and flat stretches."""
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0.0, vol, size)))
    open_ = np.concatenate(([level], close[:-1])) * np.exp(rng.normal(0.0, vol / 4, size))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, size)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, size)))
    if decimals is not None:
        open_, high, low, close = (np.round(c, decimals) for c in (open_, high, low, close))
    stamps = np.datetime64("2020-01-01", "ns") + np.arange(size) * np.timedelta64(1, "D")
    return Bars.from_columns(stamps, open_, high, low, close, rng.uniform(1e5, 1e6, size))


def splice(head, tail, t):
    """Bars 0..t from head, bars after t from tail."""
    cols = {}
    for name in ("open", "high", "low", "close", "volume"):
        cols[name] = np.concatenate((getattr(head, name)[: t + 1], getattr(tail, name)[t + 1 :]))
    return Bars.from_columns(head.timestamps, **cols)


def entries(position):
    """How many times a position is opened or flipped."""
    previous = np.concatenate(([0.0], position[:-1]))
    return int(np.sum((position != 0) & (position != previous)))


# ------------------------------------------------- loop references (obviously right, slow)


def ref_sma(x, n):
    out = [math.nan] * len(x)
    for i in range(n - 1, len(x)):
        out[i] = math.fsum(x[i - n + 1 : i + 1]) / n
    return np.array(out)


def ref_std(x, n):
    out = [math.nan] * len(x)
    for i in range(n - 1, len(x)):
        window = x[i - n + 1 : i + 1]
        mean = math.fsum(window) / n
        out[i] = math.sqrt(math.fsum((v - mean) ** 2 for v in window) / n)
    return np.array(out)


def ref_rolling(x, n, fn):
    out = [math.nan] * len(x)
    for i in range(n - 1, len(x)):
        out[i] = fn(x[i - n + 1 : i + 1])
    return np.array(out)


def ref_ema(x, alpha, init=None):
    out, prev = [], x[0] if init is None else init
    for v in x:
        prev = alpha * v + (1 - alpha) * prev
        out.append(prev)
    return np.array(out)


def ref_rsi(close, n):
    out = [math.nan] * len(close)
    if len(close) <= n:
        return np.array(out)
    changes = [close[i] - close[i - 1] for i in range(1, len(close))]
    avg_gain = sum(max(c, 0.0) for c in changes[:n]) / n
    avg_loss = sum(max(-c, 0.0) for c in changes[:n]) / n
    for i in range(n, len(close)):
        if i > n:
            c = changes[i - 1]
            avg_gain = (avg_gain * (n - 1) + max(c, 0.0)) / n
            avg_loss = (avg_loss * (n - 1) + max(-c, 0.0)) / n
        if avg_gain + avg_loss == 0:
            out[i] = 50.0
        elif avg_loss == 0:
            out[i] = 100.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return np.array(out)


TIE = 1e-10  # price differences below this fraction of the price are ties (rounding noise)


def ref_sign(diff, price):
    return 0.0 if abs(diff) <= TIE * abs(price) else math.copysign(1.0, diff)


def ref_latch(entry, exit_):
    state, out = False, []
    for e, x in zip(entry, exit_, strict=True):
        if x:
            state = False
        elif e:
            state = True
        out.append(state)
    return np.array(out)


def ref_positions(key, bars, p):
    """Each template's rule, bar by bar, from the loop indicators (long and short)."""
    c, h, lo = list(bars.close), list(bars.high), list(bars.low)
    size = len(c)
    pos = np.zeros(size)
    if key == "sma_crossover":
        fast, slow = ref_sma(c, p["fast"]), ref_sma(c, p["slow"])
        for i in range(p["slow"] - 1, size):
            pos[i] = ref_sign(fast[i] - slow[i], c[i])
    elif key == "ema_macd":
        macd = ref_ema(c, 2 / (p["fast"] + 1)) - ref_ema(c, 2 / (p["slow"] + 1))
        trigger = ref_ema(list(macd), 2 / (p["signal"] + 1))
        for i in range(p["slow"] + p["signal"] - 2, size):
            pos[i] = ref_sign(macd[i] - trigger[i], c[i])
    elif key == "rsi_reversion":
        # Levels compare with a 1e-9 tie, as the template: an RSI that is exactly a level comes
        # out ~1e-14 off it, on a different side for each formula.
        rsi, state, tie = ref_rsi(c, p["period"]), 0, 1e-9
        for i in range(p["period"], size):
            if (state == 1 and rsi[i] >= p["exit"] - tie) or (state == -1 and rsi[i] <= p["exit"] + tie):
                state = 0
            if rsi[i] < p["oversold"] - tie:
                state = 1
            elif rsi[i] > p["overbought"] + tie:
                state = -1
            pos[i] = state
    elif key == "bollinger_reversion":
        n, k = p["window"], p["num_std"]
        mid, std, state = ref_sma(c, n), ref_std(c, n), 0
        for i in range(n - 1, size):
            tol = TIE * abs(c[i])
            if (state == 1 and c[i] >= mid[i] - tol) or (state == -1 and c[i] <= mid[i] + tol):
                state = 0
            if c[i] < mid[i] - k * std[i] - tol:
                state = 1
            elif c[i] > mid[i] + k * std[i] + tol:
                state = -1
            pos[i] = state
    elif key == "donchian_breakout":
        n, m, state = p["entry_window"], p["exit_window"], 0
        for i in range(n, size):
            if (state == 1 and c[i] < min(lo[i - m : i])) or (state == -1 and c[i] > max(h[i - m : i])):
                state = 0
            if c[i] > max(h[i - n : i]):
                state = 1
            elif c[i] < min(lo[i - n : i]):
                state = -1
            pos[i] = state
    else:
        raise AssertionError(f"no reference for {key}")
    return pos


# ----------------------------------------------------------------- registry


def test_registry_lists_the_templates_in_a_stable_order():
    keys = [t.key for t in all_templates()]
    assert set(keys) >= EXPECTED_KEYS
    assert len(keys) == len(set(keys))
    assert keys == [t.key for t in all_templates()]
    assert template_choices() == [(t.key, t.name) for t in all_templates()]
    for key in keys:
        assert get_template(key).key == key


@pytest.mark.parametrize("key", ["nope", "", None, ["sma_crossover"], "SMA_CROSSOVER"])
def test_unknown_template_names_the_known_keys(key):
    with pytest.raises(UnknownTemplateError) as info:
        get_template(key)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message == info.value.args[0]
    assert not message.startswith("'")  # not KeyError's repr-quoting
    for known in EXPECTED_KEYS:
        assert known in message


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_schema_is_complete_and_defaults_validate(template):
    assert len(template.description) > 200
    assert template.name
    schema = template.schema()
    assert {"long_only", "stop_loss", "take_profit"} <= set(schema)
    for spec in template.own_params:
        entry = schema[spec.name]
        assert entry["type"] in {"int", "float"}
        assert entry["min"] < entry["max"]
        assert entry["min"] <= entry["default"] <= entry["max"]
        assert spec.description
    assert template.validate({}) == template.defaults()
    assert template.validate(template.defaults()) == template.defaults()


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_validation_reports_every_field_violation_at_once(template):
    first, second = template.own_params[0], template.own_params[1]
    params = {
        "no_such_param": 3,
        first.name: "ten",  # wrong type
        second.name: second.max + 1,  # out of bounds
        "long_only": "yes",  # not a boolean
        "stop_loss": -0.1,  # out of bounds
    }
    with pytest.raises(ParamValidationError) as info:
        template.validate(params)
    errors = info.value.errors
    assert set(errors) == {"no_such_param", first.name, second.name, "long_only", "stop_loss"}
    assert "unknown parameter" in errors["no_such_param"]
    assert "number" in errors[first.name]
    assert str(second.max) in errors[second.name]
    assert "boolean" in errors["long_only"]


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_validation_rejects_fractional_ints_and_non_finite_floats(template):
    ints = [p for p in template.own_params if p.type == "int"]
    assert ints
    bad = {ints[0].name: ints[0].default + 0.5, "take_profit": math.nan}
    with pytest.raises(ParamValidationError) as info:
        template.validate(bad)
    assert set(info.value.errors) == {ints[0].name, "take_profit"}
    clean = template.validate({ints[0].name: float(ints[0].default)})
    assert clean[ints[0].name] == ints[0].default
    assert type(clean[ints[0].name]) is int


CONSTRAINT_CASES = [
    ("sma_crossover", {"fast": 50, "slow": 50}, "fast"),
    ("sma_crossover", {"fast": 100, "slow": 30}, "fast"),
    ("ema_macd", {"fast": 26, "slow": 12}, "fast"),
    ("ema_macd", {"fast": 20, "slow": 20}, "fast"),
    ("rsi_reversion", {"oversold": 45, "exit": 40}, "oversold"),
    ("rsi_reversion", {"overbought": 55, "exit": 60}, "overbought"),
    ("donchian_breakout", {"entry_window": 20, "exit_window": 30}, "exit_window"),
]


@pytest.mark.parametrize(("key", "params", "field"), CONSTRAINT_CASES)
def test_cross_parameter_rules(key, params, field):
    with pytest.raises(ParamValidationError) as info:
        get_template(key).validate(params)
    assert set(info.value.errors) == {field}


def test_boundary_of_cross_parameter_rules_is_allowed():
    get_template("sma_crossover").validate({"fast": 49, "slow": 50})
    get_template("donchian_breakout").validate({"entry_window": 20, "exit_window": 20})
    get_template("rsi_reversion").validate({"oversold": 49, "exit": 50, "overbought": 51})


def test_cross_parameter_rule_is_reported_alongside_field_errors():
    with pytest.raises(ParamValidationError) as info:
        get_template("sma_crossover").validate({"fast": 60, "slow": 50, "no_such_param": 1})
    assert set(info.value.errors) == {"fast", "no_such_param"}


# --------------------------------------------------------------- indicators

WINDOWS = [1, 2, 3, 7, 20, 64, 65, 300]


def random_walk(size, seed, level=100.0):
    return level + np.cumsum(np.random.default_rng(seed).normal(size=size))


@pytest.mark.parametrize("n", WINDOWS)
def test_sma_matches_reference(n):
    x = random_walk(300, n)
    np.testing.assert_allclose(ind.sma(x, n), ref_sma(list(x), n), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", WINDOWS)
def test_rolling_std_matches_reference(n):
    x = random_walk(300, n)
    mean, std = ind.rolling_mean_std(x, n)
    np.testing.assert_allclose(std, ref_std(list(x), n), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mean, ref_sma(list(x), n), rtol=1e-12)
    np.testing.assert_array_equal(ind.rolling_std(x, n), std)


@pytest.mark.parametrize("n", WINDOWS)
def test_rolling_max_min_match_reference(n):
    x = random_walk(300, n)
    np.testing.assert_array_equal(ind.rolling_max(x, n), ref_rolling(list(x), n, max))
    np.testing.assert_array_equal(ind.rolling_min(x, n), ref_rolling(list(x), n, min))


@pytest.mark.parametrize("alpha", [1.0, 0.999, 0.9, 0.5, 0.1, 2 / 27, 1 / 14, 0.01, 1e-4, 1e-7])
def test_ema_matches_reference(alpha):
    # 3000 bars span several internal blocks for alpha >= ~0.1.
    x = random_walk(3000, 7)
    np.testing.assert_allclose(ind.ema(x, alpha), ref_ema(list(x), alpha), rtol=1e-12)
    np.testing.assert_allclose(ind.ema(x, alpha, init=50.0), ref_ema(list(x), alpha, 50.0), rtol=1e-12)


def test_ema_span_uses_two_over_span_plus_one():
    x = random_walk(100, 3)
    np.testing.assert_array_equal(ind.ema_span(x, 9), ind.ema(x, 0.2))


def test_ema_of_a_sign_changing_series_stays_accurate():
    x = np.random.default_rng(5).normal(size=5000)
    np.testing.assert_allclose(ind.ema(x, 0.05), ref_ema(list(x), 0.05), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 14, 30, 299, 300])
def test_rsi_matches_wilder_reference(n):
    x = random_walk(300, n)
    np.testing.assert_allclose(ind.rsi(x, n), ref_rsi(list(x), n), rtol=1e-9, atol=1e-9)


def test_rsi_edges_flat_is_50_and_rising_is_100():
    assert np.all(ind.rsi(np.full(30, 5.0), 14)[14:] == 50.0)
    assert np.all(ind.rsi(np.arange(30.0), 14)[14:] == 100.0)
    assert np.all(ind.rsi(-np.arange(30.0), 14)[14:] == 0.0)
    assert np.isnan(ind.rsi(np.arange(30.0), 14)[:14]).all()


def test_indicators_on_large_long_series_keep_precision():
    # A running total over 10**6 bars at a 10**4 level would lose ~7 digits; the blocks do not.
    x = random_walk(1_000_000, 11, level=10_000.0)
    tail = x[-200:]
    assert ind.sma(x, 200)[-1] == pytest.approx(math.fsum(tail) / 200, rel=1e-13)
    assert ind.rolling_std(x, 200)[-1] == pytest.approx(float(np.std(tail)), rel=1e-8)
    assert ind.rolling_max(x, 200)[-1] == tail.max()


@pytest.mark.parametrize("size", [0, 1, 5])
def test_indicators_on_short_series_are_all_nan(size):
    x = random_walk(size, 1)
    for values in (ind.sma(x, 6), ind.rolling_std(x, 6), ind.rolling_max(x, 6), ind.rolling_min(x, 6), ind.rsi(x, 5)):
        assert len(values) == size
        assert np.isnan(values).all()
    assert len(ind.ema(x, 0.5)) == size


def test_shift_and_latch():
    np.testing.assert_array_equal(ind.shift(np.array([1.0, 2.0, 3.0])), [np.nan, 1.0, 2.0])
    rng = np.random.default_rng(2)
    entry, exit_ = rng.random(2000) < 0.05, rng.random(2000) < 0.05
    np.testing.assert_array_equal(ind.latch(entry, exit_), ref_latch(entry, exit_))
    # Same-bar entry and exit: the exit wins.
    np.testing.assert_array_equal(ind.latch([1, 1, 0], [0, 1, 0]), [True, False, False])
    assert ind.latch([], []).shape == (0,)


# ------------------------------------------------------------ template behaviour


@st.composite
def template_params(draw, template):
    params = {"long_only": False}
    for spec in template.own_params:
        if spec.type == "int":
            params[spec.name] = draw(st.integers(int(spec.min), int(min(spec.max, 60))))
        else:
            params[spec.name] = draw(st.floats(spec.min, spec.max, allow_nan=False))
    try:
        return template.validate(params)
    except ParamValidationError:
        assume(False)


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
@HYPOTHESIS
@given(data=st.data())
def test_template_matches_its_loop_reference(template, data):
    params = data.draw(template_params(template), label="params")
    size = data.draw(st.integers(1, 300), label="size")
    decimals = data.draw(st.sampled_from([None, 2, 0]), label="decimals")
    bars = random_bars(size, data.draw(st.integers(0, 2**32 - 1), label="seed"), decimals)
    position = template.target_positions(bars, params)
    np.testing.assert_array_equal(position, ref_positions(template.key, bars, params))


def test_rsi_exactly_at_a_level_is_at_it():
    """Whole-number prices give an RSI of exactly 60 at the last bar (6 of 10 units gained); with
    overbought at 60 that is not above it. 100*g/(g+l) reads 60.000000000000007 and shorted."""
    template = get_template("rsi_reversion")
    bars = random_bars(13, 1, 0)
    params = template.validate({"long_only": False, "period": 12, "oversold": 1.0, "overbought": 60.0, "exit": 2.0})
    assert ind.rsi(bars.close, 12)[-1] == pytest.approx(60.0, abs=1e-12)
    np.testing.assert_array_equal(template.target_positions(bars, params), np.zeros(13))
    np.testing.assert_array_equal(ref_positions("rsi_reversion", bars, params), np.zeros(13))


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_defaults_trade_plausibly_on_spx_daily(template):
    bars = spx_bars()
    long_only = template.target_positions(bars, template.defaults())
    both = template.target_positions(bars, {**template.defaults(), "long_only": False})
    assert long_only.shape == (len(bars),)
    # ~20 years of daily bars: from a couple of trades a year up to one every few weeks.
    assert 10 <= entries(long_only) <= 400
    assert 0.02 < np.mean(long_only != 0) < 0.9
    assert set(np.unique(long_only)) <= {0.0, 1.0}
    assert (both < 0).any() and (both > 0).any()
    assert long_only[0] == 0.0


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
@pytest.mark.parametrize("seed", range(3))
def test_long_only_clips_shorts_to_flat(template, seed):
    bars = random_bars(1000, seed)
    params = {**template.defaults(), "long_only": False}
    both = template.target_positions(bars, params)
    long_only = template.target_positions(bars, {**params, "long_only": True})
    assert (both < 0).any()
    np.testing.assert_array_equal(long_only, np.clip(both, 0.0, 1.0))


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
@pytest.mark.parametrize("size", [0, 1, 2, 10])
def test_short_histories_are_flat(template, size):
    position = template.target_positions(random_bars(size, 0), {"long_only": False})
    assert position.shape == (size,)
    assert not position.any()


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
@pytest.mark.parametrize("level", [100.0, 101.37, 0.0123, 98765.4321])
def test_flat_prices_give_no_position(template, level):
    # Vectorised sums carry ~1e-14 rounding noise; a flat series must not trade on it.
    position = template.target_positions(random_bars(400, 0, level=level, vol=0.0), {"long_only": False})
    assert not position.any()


def test_tie_tolerance_is_relative_to_price():
    assert list(ind.tolerant_sign(np.array([1e-9, -1e-9, 1e-7, -1e-7, np.nan]), 100.0)) == [0, 0, 1, -1, 0]


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
@HYPOTHESIS
@given(data=st.data())
def test_no_look_ahead(template, data):
    params = data.draw(template_params(template), label="params")
    size = data.draw(st.integers(2, 250), label="size")
    t = data.draw(st.integers(0, size - 2), label="t")
    decimals = data.draw(st.sampled_from([None, 2, 0]), label="decimals")
    seed, other_seed = data.draw(st.integers(0, 2**32 - 1)), data.draw(st.integers(0, 2**32 - 1))
    scale = data.draw(st.sampled_from([1.0, 1e-3, 1e3]), label="future scale")
    bars = random_bars(size, seed, decimals)
    future = random_bars(size, other_seed, decimals, level=100.0 * scale)
    changed = splice(bars, future, t)
    position = template.target_positions(bars, params)
    assert np.isfinite(position).all() and (np.abs(position) <= 1).all()
    # Bit for bit: what is decided at t never depends on bars after t, nor on the series length.
    np.testing.assert_array_equal(template.target_positions(changed, params)[: t + 1], position[: t + 1])
    np.testing.assert_array_equal(template.target_positions(bars.slice(0, t + 1), params), position[: t + 1])
