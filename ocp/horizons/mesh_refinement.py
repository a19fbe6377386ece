"""Finite horizons: mesh refinement until the collocation error estimate meets a tolerance.

One NLP on [0, T] with a fixed mesh is exact only if its elements resolve the path. On a
horizon long against the path's own time scales (γ small, T ≫ 1/r) the elements are far
longer than the decay they must follow and the NLP converges, "successfully", to a wrong
path (γ = 0, T = 1e4 on the quadratic scenario: error 0.87 of the path's range).

The estimate (the doubling loop is ``ocp.nlp.refinement``). Gauss collocation is
superconvergent, so the coefficients of one solution say little about its error; the difference
to the solution on the mesh with every element halved does: with the error O(h^p),
|θ_N − θ_2N| ≈ (1 − 2^{−p})·err_N ≥ err_N/2 (Betts, *Practical Methods for Optimal Control*,
2010, §4.7 uses the same principle). It is the max
over θ_N's samples of |θ_N(t) − θ_2N(t)| relative to the path's range max|θ(t) − θ(0)|.
The finer solution is returned when its own error, ≈ 2^{−p} of the estimate, meets the
tolerance, with p = d the degree (the samples between collocation points converge at order
d + 1, the element ends at 2d: p = d is the conservative choice).

When. With ``tol`` given, always (on the infinite horizon: the first window's mesh, each
level solving the whole path again). By default (``tol=None``) only when the mesh is coarse
against the time scales of the local quadratic model at θ0: the EL exponents
r± = γ/2 ± √(γ²/4 + ηkλ) of the curvatures λ of G⁻¹∇²L (Vastola et al. 2025, App. C.1), where
an element of width h with h·max|r±| > COARSE (a mode changing by e^COARSE across one
element) is suspect; the default tolerance is then DEFAULT_TOL. The catalogue's horizons pass
this test, so their single NLP is unchanged.

The mesh doubles at most MAX_DOUBLINGS times; if the estimate still misses the tolerance the
solve ends in a SolveError (status ``"mesh_refinement"``, the finest path as its last
iterate) that says why and what to do, never a wrong path marked as success.
``stats["mesh_refinement"]``: the tolerance and, per mesh, its intervals and error estimate.
"""
from __future__ import annotations

import numpy as np

from ..errors import SolveError
from ..nlp.refinement import double_until_agreed
from ..nlp.window import SolveStats

COARSE = 0.5
DEFAULT_TOL = 1e-8
MAX_DOUBLINGS = 5
STATUS = "mesh_refinement"


def suspect(problem, theta0, horizon, mesh, local_rates) -> bool:
    """Whether one element of ``mesh`` on [0, horizon] spans more than COARSE of the fastest
    EL exponent of the local quadratic model at θ0 (``local_rates``: its curvatures ηkλ)."""
    if not np.all(np.isfinite(local_rates)):
        return False        # no local quadratic model at θ0: nothing to judge the mesh by
    gamma = problem.gamma
    fastest = gamma / 2 + np.sqrt(gamma ** 2 / 4 + np.max(local_rates, initial=0.0))
    return horizon / mesh.intervals * fastest > COARSE


def estimate(coarse, fine) -> float:
    """max |θ_coarse(t) − θ_fine(t)| over the coarse samples, relative to the path's range."""
    spread = np.abs(fine.theta - fine.theta[0]).max()
    if spread == 0:
        return 0.0
    common = coarse.t <= fine.t[-1]          # infinite paths: where both have samples
    return float(np.abs(coarse.theta[common] - fine(coarse.t[common])).max() / spread)


def refine(solve_on, trajectory, mesh, tol, horizon):
    """Double ``mesh`` from ``trajectory`` (its solution) until the estimate meets ``tol``.

    ``solve_on(mesh, guess)`` solves the same problem on another mesh from a Trajectory guess
    (the pipeline's core below this layer)."""
    spent = [SolveStats.of(trajectory.stats)]

    def solve_counted(finer, coarse):
        fine = solve_on(finer, coarse)
        spent.append(SolveStats.of(fine.stats))
        return fine

    own_error = 2.0 ** -mesh.degree      # the finer solution's error, as a fraction of the estimate
    result = double_until_agreed(solve_counted, mesh, estimate, lambda error: error * own_error <= tol,
                                 more=lambda level, doublings: doublings < MAX_DOUBLINGS, coarse=trajectory)
    history = [{"intervals": level.intervals, "estimate": error} for level, error in result.history]
    total = sum(spent[1:], spent[0])
    if result.converged:
        history.append({"intervals": result.level.intervals, "estimate": history[-1]["estimate"] * own_error})
        fine = result.solution
        fine.stats.update(mesh_refinement={"tol": tol, "meshes": history}, solves=total.solves,
                          iterations=total.iterations)
        return fine
    finest = result.solution
    finest.stats.update(success=False, status=STATUS, mesh_refinement={"tol": tol, "meshes": history})
    raise SolveError(
        f"mesh refinement did not reach the tolerance {tol:g} on horizon {horizon:g}: with "
        f"{result.level.intervals} intervals two meshes still differ by {history[-1]['estimate']:.2g} of the "
        f"path's range; the horizon is long against the path's time scales: solve with horizon=inf "
        f"(the path is the infinite-horizon one until near T) or give a finer mesh", STATUS,
        total.iterations, finest)
