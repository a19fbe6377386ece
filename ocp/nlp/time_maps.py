"""Maps from the computational coordinate s ∈ [0, 1] to physical time t.

A transcription collocates in s; the map supplies t(s, c), dt/ds and the inverse, where
the scale c is an NLP parameter (the horizon T, or the time scale of the infinite map),
so changing it does not rebuild anything.

* ``LINEAR``: t = c·s, a finite horizon [0, T] with c = T.
* ``ALGEBRAIC``: t = c·s/(1 − s), the half-line [0, ∞) (Garg et al., "Pseudospectral
  methods for solving infinite-horizon optimal control problems", Automatica 2011).
  s = 1 is singular (dt/ds → ∞): it is never a collocation point.

The functions accept numpy arrays and CasADi symbols alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

WINDOW_DISCOUNT = 1e-12      # the mapped domain of an infinite-horizon window ends where e^{−γt} is this


@dataclass(frozen=True)
class TimeMap:
    name: str
    infinite: bool
    time: Callable      # (s, c) -> t
    rate: Callable      # (s, c) -> dt/ds
    inverse: Callable   # (t, c) -> s


LINEAR = TimeMap(
    "linear", False,
    time=lambda s, c: c * s,
    rate=lambda s, c: c + 0 * s,
    inverse=lambda t, c: np.asarray(t, dtype=float) / c,
)

ALGEBRAIC = TimeMap(
    "algebraic", True,
    time=lambda s, c: c * s / (1 - s),
    rate=lambda s, c: c / (1 - s) ** 2,
    inverse=lambda t, c: np.asarray(t, dtype=float) / (c + np.asarray(t, dtype=float)),
)


def element_coordinate(t, t_a, scale):
    """The local coordinate of a Trajectory element and its rate d(local)/dt (ocp.trajectory):
    s = (t − t_a)/(scale + t − t_a), the algebraic map started at t_a, when ``scale`` > 0;
    t itself when ``scale`` == 0 (finite-horizon elements, integrator steps)."""
    t = np.asarray(t, dtype=float)
    if scale > 0:
        s = ALGEBRAIC.inverse(t - t_a, scale)
        return s, 1.0 / ALGEBRAIC.rate(s, scale)
    return t, np.ones_like(t)


def element_time(local, t_a, scale):
    """The inverse of :func:`element_coordinate`: t from an element's local coordinate."""
    local = np.asarray(local, dtype=float)
    return t_a + ALGEBRAIC.time(local, scale) if scale > 0 else local


def window_end(scale, gamma, discount=WINDOW_DISCOUNT) -> float:
    """s_end of an infinite-horizon window on the algebraic map: 1 (all of [0, ∞)) for γ = 0,
    else where e^{−γt} = ``discount`` (ocp.horizons.infinite: beyond it the weight is below
    round-off and the path undetermined)."""
    if gamma == 0:
        return 1.0
    t_window = -math.log(discount) / gamma
    return t_window / (scale + t_window)
