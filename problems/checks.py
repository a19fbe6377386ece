"""The one checker of parameter values in the scenario layer: finite numbers, bounded numbers,
integers and arrays, each refused with an :class:`ocp.ProblemError` naming the parameter.

(Ranges of γ, η, k and the metric are checked once more by :class:`ocp.DiscountedOCP`, the
engine's own checker; the application's command-line checkers live in lossnav/cli/arguments.py.)
"""
from __future__ import annotations

import math

import numpy as np

import ocp


def scalar(name: str, value) -> float:
    """A finite real number, or a ProblemError naming the parameter (ranges are checked by ocp)."""
    if isinstance(value, bool):
        raise ocp.ProblemError(f"parameter {name!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ocp.ProblemError(f"parameter {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ocp.ProblemError(f"parameter {name!r} must be finite, got {value!r}")
    return number


def array(name: str, value, ndim: tuple = (0, 1, 2)) -> np.ndarray:
    """A finite float array with ndim in ``ndim``, or a ProblemError naming the parameter."""
    try:
        result = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ocp.ProblemError(f"parameter {name!r} must be a number or a (nested) list of numbers, "
                               f"got {value!r}") from None
    if result.ndim not in ndim:
        raise ocp.ProblemError(f"parameter {name!r} must have {' or '.join(map(str, ndim))} "
                               f"dimensions, got shape {result.shape}")
    if result.size == 0 or not np.all(np.isfinite(result)):
        raise ocp.ProblemError(f"parameter {name!r} must be non-empty and finite")
    return result


def bounded(name: str, value, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite number in [low, high] (ends open on request), or a ProblemError naming it."""
    value = scalar(name, value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ocp.ProblemError(f"parameter {name!r} must be {'>' if low_open else '≥'} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ocp.ProblemError(f"parameter {name!r} must be {'<' if high_open else '≤'} {high}, got {value}")
    return value


def integer(name: str, value, low=None) -> int:
    """An integer (an int or a float with no fractional part, not a bool) ≥ ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not float(value).is_integer() or (low is not None and value < low):
        bound = "" if low is None else f" ≥ {low}"
        raise ocp.ProblemError(f"parameter {name!r} must be an integer{bound}, got {value!r}")
    return int(value)
