"""The reference path a case is checked against (``lossnav.validation.cases.reference``).

A mesh-converged collocation path, or, for a loss given as an :class:`ocp.ExternalLoss`, the
matrix-free solve that checks its own doubled mesh and Euler–Lagrange residual. Its own module so
that the optimizer checks (:mod:`lossnav.validation.optimizer_check`) and the cases share it
without importing each other.
"""
from __future__ import annotations

import math

import numpy as np

import ocp

REFERENCE_AGREEMENT = 1e-7     # successive meshes of the collocation reference
MAX_INTERVALS = 640


def reference(scenario, theta0, mesh=None, horizon=math.inf):
    """A mesh-converged collocation reference: the path on ``mesh`` and on twice its
    intervals; the intervals double until the two agree to ``REFERENCE_AGREEMENT`` of
    |θ0 − θ*| (fast rotations need finer meshes than the default). Returns the finer
    path and the last change, relative to |θ0 − θ*|.

    A problem solved matrix-free (a loss given as an :class:`ocp.ExternalLoss`, e.g. a network's)
    checks its own doubled mesh and Euler–Lagrange residual and refuses a path that fails them
    (ocp.SolveError): one solve, its change ``stats["mesh_agreement"]`` (relative to the path's
    range). ``horizon``: math.inf or a finite free-end T (the matrix-free case only)."""
    if getattr(scenario.problem, "external", False):
        path = ocp.solve(scenario.problem, theta0, horizon=horizon)
        return path, float(path.stats.get("mesh_agreement") or 0.0)
    if not math.isinf(horizon):
        raise ocp.ProblemError(f"{scenario.name}: a finite validation horizon needs a matrix-free problem "
                               "(the collocation reference is the infinite-horizon one)")
    mesh = mesh or ocp.Mesh()
    distance = max(np.linalg.norm(theta0 - scenario.fixed_point()), 1e-300)
    guesses = scenario.guesses() or None
    coarse = ocp.solve(scenario.problem, theta0, mesh=mesh, guess=guesses)
    while True:
        mesh = ocp.Mesh(2 * mesh.intervals, mesh.degree, mesh.scheme)
        fine = ocp.solve(scenario.problem, theta0, mesh=mesh, guess=guesses)
        # compare on the collocated windows (the policy continuation is error-controlled)
        end = min(fine.t[-1], *(path.stats.get("policy_from", np.inf) for path in (coarse, fine)))
        inside = coarse.t <= end
        change = float(np.abs(fine(coarse.t[inside]) - coarse.theta[inside]).max() / distance)
        if change <= REFERENCE_AGREEMENT or mesh.intervals >= MAX_INTERVALS:
            return fine, change
        coarse = fine
