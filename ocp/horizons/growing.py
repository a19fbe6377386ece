"""Infinite-horizon optimal paths that never come to rest (issue 15, item 4).

With a drift that has unstable directions and a large discount the optimum may let them grow:
for the LQ problem (ocp/lq.py) the closed loop θ̇ = A_cl θ + c_cl has exponents with
Re λ < γ/2 only, not Re λ < 0 (the transversality condition e^{−γt}λ(t) → 0 allows growth
slower than e^{γt/2}). Example: a non-normal 5-D drift with exponents up to 1.6, a metric,
γ = 10: A_cl has exponents up to 1.45. The engine used to assume a rest point and followed
the growing path with the policy until θ ~ 1e7, where IPOPT's absolute tolerance (1e-12) is
below the round-off of the collocation rows, ending in Infeasible_Problem_Detected (or
never reaching the rest speed: a hang).

What decides the path is then the *net* decay ν = γ − 2ρ of the discounted running cost
e^{−γt}ℓ(θ(t)) ~ e^{−νt} (ρ = max Re λ(A_cl) ≥ 0): the free end of the first window moves the
path at t by e^{−ν(T_w − t)}, not e^{−γ(T_w − t)}. So, when the LQ model at the rest point
x* (``ocp.horizons.rest_point.linear_tail`` there, on the one discounted-LQ core: exact for an
LQ problem, second order otherwise) grows:

1. the first window is solved again, warm started, cut where e^{−νt} = window_discount and
   kept while e^{−νt} ≥ keep_discount (one more NLP);
2. beyond it the path is the LQ solution from the kept end (exact for an LQ problem), followed
   until e^{−νt} = 1e-16 (the rest of the objective is below round-off), and accepted only if
   its velocity at the junction agrees with the collocated one to JUNCTION_TOLERANCE.

``stats``: tail "lq_growing", reached_rest False, growth_rate ρ, net_decay ν.
"""
from __future__ import annotations

import math

import numpy as np

from ..budget import TIME_LIMIT
from ..errors import OCPError, SolveError
from ..nlp.guesses import shifted_guess
from ..nlp.solution import from_solution
from ..nlp.window import solve_window
from ..results.path import from_path
from ..results.trajectory import concatenate
from ..results.trajectory_algebra import shifted, until

TAIL_DISCOUNT = 1e-16        # the LQ tail is followed until e^{−νt} reaches this
JUNCTION_TOLERANCE = 1e-6    # |θ̇ collocated − θ̇ LQ| at the junction, relative to the peak speed


def net_decay(problem, tail) -> float:
    """ν = γ − 2ρ of a growing tail (ρ = max Re λ(K) ≥ 0): positive, or the optimum is not
    determined by the discount (0 or less: refused by the caller)."""
    return problem.gamma - 2 * max(tail.growth, 0.0)


def continue_growing(problem, first, tail, deadline, window_discount, keep_discount):
    """The infinite-horizon path of a growing optimum from the first window ``first``
    (``ocp.horizons.infinite.FirstWindow``; module docstring), or None when the LQ tail does
    not join the collocated path. A window that does not converge is None too (the caller
    carries on as for any other tail); a spent deadline raises."""
    tr, scale, trajectory = first.transcription, first.scale, first.trajectory
    net = net_decay(problem, tail)
    t0 = trajectory.t[0]
    t_window = -math.log(window_discount) / net
    s_end = t_window / (scale + t_window)
    guess = shifted_guess(tr, trajectory, t0, scale, s_end)
    try:
        raw = solve_window(tr, trajectory.theta[0], problem.parameter_values(t0=t0), scale, guess=guess,
                           s_end=s_end, deadline=deadline, t_offset=t0)
    except SolveError as exc:
        if exc.status == TIME_LIMIT:
            raise
        return None
    window = from_solution(tr, raw, scale, t_offset=t0)
    kept = until(window, t0 - math.log(keep_discount) / net)
    start = kept.theta[-1]
    peak = np.linalg.norm(window.velocity, axis=1).max()
    junction = float(np.abs(kept.velocity[-1] - tail.velocity(start)).max() / peak)
    if junction > JUNCTION_TOLERANCE:
        return None
    duration = -math.log(TAIL_DISCOUNT) / net
    try:
        piece = from_path(problem, tail.path(start), duration, tol=1e-13, method="lq_growing")
    except OCPError:
        return None
    joined = concatenate(kept, shifted(piece, kept.t[-1]))
    joined.objective = raw["f"]
    joined.stats = {**window.stats, "solves": 2, "tail": "lq_growing", "reached_rest": False,
                    "growth_rate": max(tail.growth, 0.0), "net_decay": net, "policy_from": float(kept.t[-1]),
                    "junction_mismatch": junction}
    return joined
