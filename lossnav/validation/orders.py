"""Observed orders of convergence, p = log(e_coarse / e_fine) / log(Δt_coarse / Δt_fine)."""
from __future__ import annotations

import itertools
import math

ROUND_OFF = 1e-12     # errors at or below this are round-off: no order can be observed


def order(coarse: float, fine: float, ratio: float = 2.0) -> float:
    """log(coarse/fine)/log(ratio); NaN when either error is at round-off (≤ ROUND_OFF:
    the rule is exact there, as OptimalQuadratic on a quadratic)."""
    if coarse <= ROUND_OFF or fine <= ROUND_OFF:
        return float("nan")
    return math.log(coarse / fine) / math.log(ratio)


def observed_orders(rows, keys) -> list:
    """Add order_<key> = log(e_coarse/e_fine)/log(Δt_coarse/Δt_fine) to each row after the
    first (rows carry "dt" and the errors ``keys``); returns ``rows``."""
    for coarse, fine in itertools.pairwise(rows):
        step = math.log(coarse["dt"] / fine["dt"])
        for key in keys:
            fine[f"order_{key}"] = math.log(coarse[key] / fine[key]) / step
    return rows
