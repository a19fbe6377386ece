"""Finite horizons whose discount falls below round-off: the infinite path, then a final window.

On [0, T] with γT ≫ 1 the weight e^{−γt} of the late part is below round-off: one NLP over
[0, T] cannot see it, and a path that wanders there reports success (design notes §2; the
reviewer's `--horizon 100` climbed back to θ0). But the problem is time-consistent: from any
state θ(t1) the rest of the optimal path is the optimal path of the same problem on
[t1, T]. And the free end at T moves the path at t by a relative e^{−γ(T − t)} at most
(the end's influence decays backwards at least at rate γ; for a quadratic loss the EL
solutions e^{r±t} give exactly e^{−(r₊ − r₋)(T − t)}, r₊ − r₋ ≥ γ). So with
W = FINAL_WINDOW/γ (e^{−γW} = 1e-12):

    θ on [0, T − W]   = the infinite-horizon optimal path (``ocp.solve(horizon=inf)``),
    θ on [T − W, T]   = the finite optimal path from θ(T − W) over W, the clock at T − W,

each part solved where its discount is visible. The same split serves a horizon long against
the path's own time scales (γ small or 0, T ≫ 1/r, where one NLP's elements cannot resolve
the decay; ``ocp.mesh_refinement``): there W = FINAL_WINDOW/ν with ν = √(γ² + 4ηkλ_min) the
decay of the end's influence near the rest point (``end_effect_window``). The objective is
∫_0^{T−W} e^{−γt}ℓ dt + e^{−γ(T−W)} J_W. A horizon so long that times near T cannot be told
apart in floating point (the spacing of floats at T above 1e-9·W) is refused with a
ProblemError that says so: there the path is the infinite-horizon one to round-off.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ProblemError
from ..nlp.window import SolveStats
from ..results.trajectory import concatenate
from ..results.trajectory_algebra import cut, discounted_integral

FINAL_WINDOW = -math.log(1e-12)      # γW of the final window: e^{−γW} = 1e-12
TIME_RESOLUTION = 1e-9               # float spacing at T allowed, relative to W


def needs_composite(problem, horizon, terminal) -> bool:
    """Whether a finite ``horizon`` reaches discounts below round-off (γT > FINAL_WINDOW + 1)."""
    return problem.gamma > 0 and problem.gamma * horizon > FINAL_WINDOW + 1


def refuse_unresolvable_end(problem, horizon, end, window):
    """ProblemError when floats near the end ``end`` are coarser than TIME_RESOLUTION·window."""
    if np.spacing(end) > TIME_RESOLUTION * window:
        raise ProblemError(
            f"horizon {horizon:g} is too long to resolve its end: floats near t = {end:g} are "
            f"{np.spacing(end):.3g} apart, against a final window of {window:.3g} (γ = {problem.gamma:g}); "
            f"the path up to there is the infinite-horizon one to round-off: use horizon=inf")


def end_effect_window(problem, rest, curvatures) -> float:
    """W with e^{−νW} = 1e-12 for the decay ν = √(γ² + 4ηkλ_min) of the free end's influence
    near the rest point (the EL exponents r± = γ/2 ± √(γ²/4 + ηkλ) differ by ν; ``curvatures``:
    ηkλ of the local quadratic model there, ``ocp.nlp.local_model.local_curvatures``). ν ≥ γ, so W is
    at most FINAL_WINDOW/γ; with γ = 0 it is finite when the loss is curved at the rest point."""
    nu = math.sqrt(problem.gamma ** 2 + 4 * float(np.min(curvatures)))
    return FINAL_WINDOW / nu if nu > 0 else math.inf


def head_until(problem, theta0, head, split):
    """The infinite-horizon path ``head`` cut at the final window's start ``split``, and whether
    it has settled there (its end is within 1e-6 of the way from the rest it reaches: a final
    window starting there moves by round-off of the path's range, so its mesh is checked only
    when asked)."""
    head_part = cut(problem, head, split)
    start = head_part.theta[-1]
    way = max(np.abs(theta0 - head.theta[-1]).max(), 1e-300)
    settled = np.abs(start - head.theta[-1]).max() <= 1e-6 * way
    return head_part, settled


def join(problem, head, head_part, final, horizon, t0, split, window):
    """The path on [t0, t0 + T]: ``head_part`` (the infinite path up to ``split``) then the final
    window ``final``; the objective ∫_0^{T−W} e^{−γt}ℓ dt + e^{−γ(T−W)} J_W."""
    path = concatenate(head_part, final)
    path.objective = (discounted_integral(problem, head_part, origin=t0)
                      + math.exp(-problem.gamma * (split - t0)) * final.objective)
    spent = SolveStats.of(head.stats) + SolveStats.of(final.stats)
    path.stats = spent.record({**head.stats, "horizon": horizon, "t0": t0, "success": True,
                               "long_horizon": {"infinite_until": float(split), "final_window": float(window),
                                                "final_mesh": final.stats.get("mesh"),
                                                "final_refinement": final.stats.get("mesh_refinement")}})
    if path.stats.get("policy_from", -math.inf) > split:   # the collocated windows end inside the cut
        path.stats.pop("policy_from")
    return path
