"""The engine's one checker of numeric inputs: every rate, horizon, time and count goes through it.

Each check returns the value converted (float or int) or raises :class:`ocp.ProblemError`
with the argument's name, the rule and the value, so a caller never checks a number its own
way. The strings "inf" and "infinity" are accepted where an infinite value is (horizons).
"""
from __future__ import annotations

import math
import numbers

from .errors import ProblemError

INFINITE_WORDS = ("inf", "infinity", "+inf")


def number(name: str, value, *, positive=False, non_negative=False, allow_inf=False,
           error=ProblemError) -> float:
    """``value`` as a float: finite (or +∞ with ``allow_inf``), and > 0 (``positive``) or
    ≥ 0 (``non_negative``) when asked; else ``error`` (a ProblemError subclass) naming ``name``."""
    if isinstance(value, str) and allow_inf and value.strip().lower() in INFINITE_WORDS:
        return math.inf
    if isinstance(value, bool):
        raise error(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise error(f"{name} must be a {'positive ' if positive else ''}number"
                    f"{' or inf' if allow_inf else ''}, got {value!r}") from None
    bound = "> 0" if positive else "≥ 0" if non_negative else ""
    finite = "finite" if not allow_inf else "a number"
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)) \
            or (positive and not value > 0) or (non_negative and not value >= 0):
        rule = f"{finite} and {bound}" if bound else finite
        if allow_inf and bound:
            rule = f"{bound} or inf"
        raise error(f"{name} must be {rule}, got {value}")
    return value


def count(name: str, value, *, minimum=1, error=ProblemError) -> int:
    """``value`` as an int ≥ ``minimum`` (bools and non-integral numbers are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise error(f"{name} must be {what}, got {value!r}")
    return int(value)
