"""The one reading of "a finite number, or None" for stored metrics, scores and evidence.

The rule: a value is a number when it is a real number (int, float, numpy's numeric scalars)
and not a boolean. A boolean is not a count (``True`` is not 1 trade), and a string is bad data,
not a number to parse: a metric stored as ``"0.5"`` was written by something broken, and reading
it as 0.5 would hide that. NaN, infinities and values too large for a float are None, so that a
gate fails its rule and a chart skips the point instead of computing with them.
"""

import math
import numbers


def finite_or_none(value):
    """``value`` as a finite float, or None (missing, bool, string, NaN, infinite, overflowing)."""
    if type(value) is float:  # the common case, without the ABC check (a refiner reads 5,000 scores)
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def bounded_number(value, kind, low=-math.inf, high=math.inf, *, low_open=False):
    """``value`` as a float (``kind`` "float") or an int ("int") within [low, high], or None.

    The one check of a number someone sends (a setting, a threshold): the reading above, an
    integer must be whole (2.0 is 2, 2.5 is not), and ``low_open`` excludes ``low``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and kind == "int":
        number = int(value)  # exact, also beyond float precision
    else:
        number = finite_or_none(value)
        if number is None:
            return None
        if kind == "int":
            if not number.is_integer():
                return None
            number = int(number)
    if number < low or (low_open and number == low) or number > high:
        return None
    return number
