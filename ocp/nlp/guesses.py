"""Initial guesses of the collocation NLP: from a constant, a target point, a Trajectory or a
callable of time, given on the problem's clock (``t0``). IPOPT finds local optima only, so
the guess picks the basin; a list of guesses is solved from each (``ocp.solve``)."""
from __future__ import annotations

import numpy as np

from ..errors import ProblemError
from ..results.trajectory import Trajectory


def guess_from(tr, s_end, state, velocity) -> np.ndarray:
    """The NLP's V from callables of s returning (len(s), n) states and velocities."""
    N, n, d = tr.mesh.intervals, tr.n, tr.mesh.degree
    s_nodes = np.concatenate([s_end * (tr.bounds[e] + (tr.bounds[e + 1] - tr.bounds[e]) * scheme.nodes)
                              for e, scheme in enumerate(tr.schemes)])
    states = np.asarray(state(s_nodes), float).reshape(N, d + 1, n)
    s_points = s_nodes.reshape(N, d + 1)[:, 1:].ravel()
    velocities = np.asarray(velocity(s_points), float).reshape(N, d, n)
    V = np.empty(tr.n_var)
    V[: N * tr.block] = np.concatenate([states.reshape(N, -1), velocities.reshape(N, -1)], axis=1).ravel()
    V[N * tr.block:] = np.asarray(state(np.array([min(s_end, 1.0 - 1e-12)])))[0]
    return V


def constant_guess(tr, theta0) -> np.ndarray:
    """θ0 held, at rest."""
    return guess_from(tr, 1.0, lambda s: np.broadcast_to(theta0, (len(s), tr.n)),
                      lambda s: np.zeros((len(s), tr.n)))


def guess_list(guess, theta0) -> list:
    """A list of guesses: a list of Trajectories/callables, or a 2-D array of target points."""
    if isinstance(guess, (list, tuple)) and guess and not np.isscalar(guess[0]):
        return list(guess)
    return [guess]


def initial_guess(tr, theta0, thetaT, scale, guess, s_end, t0=0.0):
    """V for one guess (None: IPOPT's default from :func:`constant_guess`, or the straight
    line to a fixed end θ_T). A target point is approached as e^{−t/c} (c the map's scale)."""
    if guess is None:
        if thetaT is None:
            return None
        return guess_from(tr, s_end, lambda s: theta0 + s[:, None] * (thetaT - theta0),
                          lambda s: np.broadcast_to((thetaT - theta0) / scale, (len(s), tr.n)))

    def clock(s):
        return t0 + np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-9), scale))

    if isinstance(guess, Trajectory):
        return guess_from(tr, s_end, lambda s: guess(np.clip(clock(s), guess.t[0], guess.t[-1])),
                          lambda s: np.zeros((len(s), tr.n)))
    if callable(guess):
        return guess_from(tr, s_end, lambda s: np.array([guess(t) for t in clock(s)]),
                          lambda s: np.zeros((len(s), tr.n)))
    target = np.asarray(guess, dtype=float).reshape(-1)
    if target.shape != theta0.shape:
        raise ProblemError(f"guess must have length {theta0.shape[0]}")

    def shape(s):
        return np.exp(-np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-12), scale)) / scale)

    return guess_from(tr, s_end, lambda s: target + shape(s)[:, None] * (theta0 - target),
                      lambda s: -(shape(s)[:, None] * (theta0 - target)) / scale)


def shifted_guess(tr, trajectory, t, scale, s_end) -> np.ndarray:
    """V from a previous plan read from time t on (its end state held, at rest, beyond its
    end): the warm start of a re-plan from θ(t) by time consistency."""
    end = trajectory.t[-1]

    def times(s):
        return t + np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-12), scale))

    def velocity(s):
        tt = times(s)
        v = np.column_stack([np.interp(tt, trajectory.t, trajectory.velocity[:, i]) for i in range(tr.n)])
        return np.where((tt <= end)[:, None], v, 0.0)

    return guess_from(tr, s_end, lambda s: trajectory(np.minimum(times(s), end)), velocity)
