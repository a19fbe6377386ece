"""Checks of a solution that do not trust the NLP: the Euler–Lagrange residual and mesh convergence.

For J = ∫ e^{−γt} ℓ(t, θ, θ̇) dt the Euler–Lagrange equation (Vastola et al. 2025, App. C)
is d/dt(e^{−γt} ∂ℓ/∂θ̇) = e^{−γt} ∂ℓ/∂θ, i.e.

    r(t) = ∂²ℓ/∂θ̇∂θ̇ θ̈ + ∂²ℓ/∂θ̇∂θ θ̇ + ∂²ℓ/∂θ̇∂t − γ ∂ℓ/∂θ̇ − ∂ℓ/∂θ = 0.

CasADi derives every term from the running cost, so metric and drift are included (for a loss
evaluated outside CasADi, an :class:`ocp.ExternalLoss`, the terms of its f = 0, constant-G
Lagrangian are formed directly from its batched gradients).
θ̈ is the derivative of the velocity samples' interpolant in each element.
"""
from __future__ import annotations

import math

import casadi
import numpy as np

from ..horizons import pipeline
from ..matrix_free.objective import apply_symmetric
from ..nlp.mesh import Mesh
from ..options import SolveOptions
from .trajectory_algebra import acceleration


def euler_lagrange_residual(problem, trajectory) -> np.ndarray:
    """Residual r(t) of the Euler–Lagrange equation at the trajectory samples, (n, state_dim)."""
    return _residual_and_size(problem, trajectory)[0]


def euler_lagrange_error(problem, trajectory) -> float:
    """max |r(t)| relative to the largest term of the equation along the path: a scale-free
    measure of how well the trajectory satisfies the Euler–Lagrange equation."""
    residual, size = _residual_and_size(problem, trajectory)
    return float(np.abs(residual).max() / max(size.max(), 1e-300))


def _residual_and_size(problem, trajectory):
    if problem.external:
        return _external_residual_and_size(problem, trajectory)
    n = problem.state_dim
    t, x, u, a = (casadi.SX.sym(name, size) for name, size in
                  (("t", 1), ("x", n), ("u", n), ("a", n)))
    P = casadi.SX.sym("P", problem.layout.size)
    kinetic, potential = problem.running_cost(t, x, u, problem.layout.unpack(P))
    lagrangian = kinetic + potential
    l_u = casadi.gradient(lagrangian, u)
    terms = [casadi.jtimes(l_u, u, a), casadi.jtimes(l_u, x, u), casadi.jacobian(l_u, t),
             -problem.gamma * l_u, -casadi.gradient(lagrangian, x)]
    residual = sum(terms[1:], terms[0])
    size = casadi.mmax(casadi.horzcat(*[casadi.fabs(term) for term in terms]))
    function = casadi.Function("el", [t, x, u, a, P], [residual, size]).map(len(trajectory.t))
    accelerations = acceleration(trajectory)
    params = np.tile(problem.parameter_values()[:, None], (1, len(trajectory.t)))
    out, size = function(trajectory.t[None, :], trajectory.theta.T, trajectory.velocity.T,
                         accelerations.T, params)
    return np.asarray(out).T, np.asarray(size).ravel()


def _external_residual_and_size(problem, trajectory):
    """The residual of an :class:`ocp.ExternalLoss` problem (f = 0, G constant, no CasADi):
    ℓ = (1/2η)θ̇ᵀGθ̇ + kL(θ) gives r = Gθ̈/η − γGθ̇/η − k∇L(θ), the gradients in one batched call."""
    terms = [apply_symmetric(problem.metric, acceleration(trajectory)) / problem.eta,
             -problem.gamma * apply_symmetric(problem.metric, trajectory.velocity) / problem.eta,
             -problem.k * problem.loss.gradients(trajectory.theta)]
    size = np.max([np.abs(term).max(axis=1) for term in terms], axis=0)
    return terms[0] + terms[1] + terms[2], size


def mesh_convergence(problem, theta0, meshes, reference_mesh=None, **solve_options) -> list:
    """Objective error and trajectory error against a fine reference, for each mesh.

    Returns a list of dicts with intervals, degree, scheme, objective, objective_error and
    theta_error (max over the mesh's samples of |θ − θ_ref(t)|, θ_ref from the reference's
    polynomials). ``solve_options`` are those of :func:`ocp.solve` (horizon, terminal, ...).
    """
    reference_mesh = reference_mesh or Mesh(intervals=80, degree=8)
    solve_options.setdefault("mesh_tol", math.inf)     # each mesh as given: no refinement
    theta0 = problem.check_initial_state(theta0)
    options = SolveOptions.checked(problem, **solve_options)
    reference = pipeline.run(problem, theta0, options.replace(mesh=reference_mesh))
    rows = []
    for mesh in meshes:
        trajectory = pipeline.run(problem, theta0, options.replace(mesh=mesh))
        inside = trajectory.t <= reference.t[-1]
        theta_error = np.abs(trajectory.theta[inside] - reference(trajectory.t[inside])).max()
        rows.append({"intervals": mesh.intervals, "degree": mesh.degree, "scheme": mesh.scheme,
                     "objective": trajectory.objective,
                     "objective_error": abs(trajectory.objective - reference.objective),
                     "theta_error": float(theta_error)})
    return rows
