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
x* (``ocp.lq.from_problem`` there: exact for an LQ problem, second order otherwise) grows:

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

from .budget import TIME_LIMIT
from .errors import OCPError, ProblemError, SolveError
from .guesses import shifted_guess
from .lq import from_problem, solve_lq
from .path import from_path
from .postprocess import checked_solve, from_solution
from .trajectory import concatenate
from .trajectory_algebra import shifted, truncated

TAIL_DISCOUNT = 1e-16        # the LQ tail is followed until e^{−νt} reaches this
JUNCTION_TOLERANCE = 1e-6    # |θ̇ collocated − θ̇ LQ| at the junction, relative to the peak speed


def growing_model(problem, rest):
    """The LQ solution at ``rest`` when its optimal closed loop grows (ρ ≥ 0), else None."""
    if problem.metric_function is not None or problem.state_dim != problem.dim or problem.gamma <= 0:
        return None
    try:
        model = solve_lq(**from_problem(problem, at=rest))
    except (ProblemError, np.linalg.LinAlgError):
        return None
    growth = float(model.exponents.real.max())
    return model if growth >= 0 and problem.gamma - 2 * growth > 0 else None


def continue_growing(problem, tr, trajectory, scale, model, deadline, window_discount, keep_discount):
    """The infinite-horizon path of a growing optimum from the first window ``trajectory``
    (module docstring), or None when the LQ tail does not join the collocated path."""
    growth = max(float(model.exponents.real.max()), 0.0)
    net = problem.gamma - 2 * growth
    t0 = trajectory.t[0]
    t_window = -math.log(window_discount) / net
    s_end = t_window / (scale + t_window)
    guess = shifted_guess(tr, trajectory, t0, scale, s_end)
    try:
        raw = checked_solve(tr, trajectory.theta[0], problem.parameter_values(t0=t0), scale, None, guess,
                            s_end, deadline)
    except SolveError as exc:
        if exc.status == TIME_LIMIT:
            raise
        return None             # the caller carries on as for any other tail
    window = from_solution(tr, raw, scale, t_offset=t0)
    ends = window.t[window.elements[:, 1].astype(int)]
    t_keep = t0 - math.log(keep_discount) / net
    kept = truncated(window, max(int(np.searchsorted(ends, t_keep, "right")) - 1, 0))
    start = kept.theta[-1]
    peak = np.linalg.norm(window.velocity, axis=1).max()
    junction = float(np.abs(kept.velocity[-1] - model.velocity(start)).max() / peak)
    if junction > JUNCTION_TOLERANCE:
        return None
    duration = -math.log(TAIL_DISCOUNT) / net
    try:
        piece = from_path(problem, lambda tau: model.path(tau, start), duration, tol=1e-13, method="lq_growing")
    except OCPError:
        return None
    joined = concatenate(kept, shifted(piece, kept.t[-1]))
    joined.objective = raw["f"]
    joined.stats = {**window.stats, "solves": 2, "tail": "lq_growing", "reached_rest": False,
                    "growth_rate": growth, "net_decay": net, "policy_from": float(kept.t[-1]),
                    "junction_mismatch": junction}
    return joined
