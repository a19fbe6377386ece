"""The rest point of the infinite horizon and the curvature range around it, from HVPs only.

With f = 0 the infinite-horizon path of Vastola et al. 2025 (Eq. 2, App. C) ends at a rest point
θ* with ∇L(θ*) = 0 and lies on its stable manifold; near θ* it decays as e^{rt} with
r = γ/2 − sqrt(γ²/4 + ηkλ) for each eigenvalue λ of G⁻¹∇²L(θ*) (design notes §1). θ* is found as
:mod:`ocp.horizons.downhill` finds it (the basin gradient descent from θ0 falls into): L-BFGS
(scipy), then trust-region Newton–CG on HVPs to ‖∇L‖ ≤ REST_TOL. λ_min and λ_max come from Lanczos
(scipy.sparse.linalg.eigsh on a LinearOperator of HVPs, refined by float64 Rayleigh quotients):
λ_min > 0 (a strict minimum, with its residual bound) is required.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse.linalg

from ..budget import Deadline
from ..errors import SolveError
from .objective import MetricLoss

REST_TOL = 1e-10
"""‖∇L̂(φ*)‖_∞ at the rest point, relative to max(1, ‖∇L̂(φ0)‖_∞)."""

LBFGS_TOL = 1e-7
"""Where L-BFGS hands over to Newton–CG (relative ‖∇L̂‖_∞): measured at D = 5,035 and 20,035,
the split that costs least (L-BFGS steps are a gradient each; Newton's need a CG of HVPs)."""

NOT_A_MINIMUM = "rest_point_not_a_minimum"
NO_REST_POINT = "rest_point_not_found"


def downhill_rest_point(problem, theta0, deadline=None) -> np.ndarray:
    """θ* of an ExternalLoss problem (constant metric) downhill from θ0: the point its matrix-free
    infinite-horizon path comes to rest at (the same computation, shared through the memo)."""
    metric_loss = MetricLoss(problem.loss, problem.metric)
    theta0 = np.asarray(theta0, dtype=float)
    with problem.loss.thread_limits():
        phi, _ = rest_point(metric_loss, metric_loss.phi(theta0[None])[0], deadline or Deadline(None))
    return metric_loss.theta(phi[None])[0]


def rest_point(metric_loss, phi0, deadline):
    """φ* downhill from φ0 and the iterations spent (module docstring); SolveError if the
    gradient there does not reach REST_TOL. Remembered on the loss (``loss.memo``, keyed by the
    metric and φ0): the validation's fixed point and the solve's rest point are one computation."""
    memo = metric_loss.loss.memo.setdefault("rest_point", {})
    key = (metric_loss.key, np.asarray(phi0, dtype=float).tobytes())
    if key not in memo:
        memo[key] = _descend(metric_loss, phi0, deadline)
    phi, stats = memo[key]
    return phi.copy(), dict(stats)


def _descend(metric_loss, phi0, deadline):
    """L-BFGS to a loose gradient, then trust-region Newton–CG (scipy's trust-ncg: globalised, so
    negative curvature on the way and a far start are safe) on Krylov-precision HVPs, then, where
    the trust region stalls because value differences fall below rounding, Newton steps kept only
    while they shrink ‖∇L̂‖. The last gradient is float64 and decides."""
    def value_and_gradient(phi):
        deadline.check("the rest point's descent")
        return metric_loss.value(phi), metric_loss.gradients(phi[None])[0]

    def gradient(phi):
        return metric_loss.gradients(phi[None])[0]

    def hessp(phi, v):
        deadline.check("the rest point's Newton-CG")
        return metric_loss.hvps(phi[None], v[None], krylov=True)[0]

    start_norm = max(1.0, np.abs(gradient(phi0)).max())
    tolerance = REST_TOL * start_norm
    descent = scipy.optimize.minimize(value_and_gradient, phi0, jac=True, method="L-BFGS-B",
                                      options={"maxiter": 5000, "gtol": LBFGS_TOL * start_norm,
                                               "ftol": 1e-15})
    region = scipy.optimize.minimize(value_and_gradient, descent.x, jac=True, hessp=hessp, method="trust-ncg",
                                     options={"gtol": tolerance, "maxiter": 200})
    phi, g, newton_iterations = region.x, gradient(region.x), 0
    residual = np.abs(g).max()
    while not residual <= tolerance and newton_iterations < 5:
        newton_iterations += 1
        operator = scipy.sparse.linalg.LinearOperator((len(phi), len(phi)), dtype=float,
                                                      matvec=lambda v, p=phi: hessp(p, v)
                                                      if np.all(np.isfinite(v)) else v)
        with np.errstate(all="ignore"):      # a singular Hessian: CG's step is not finite
            step, _ = scipy.sparse.linalg.cg(operator, -g, rtol=1e-4, maxiter=5 * len(phi))
        if not np.all(np.isfinite(step)):
            break
        trial = gradient(phi + step)
        if not np.abs(trial).max() < residual:
            break
        phi, g, residual = phi + step, trial, np.abs(trial).max()
    if not residual <= tolerance:
        raise SolveError(f"no rest point found downhill from theta0 (|grad L| = {residual:.3g} after "
                         "L-BFGS and trust-region Newton-CG)", NO_REST_POINT, int(region.nit))
    return phi, {"rest_lbfgs_iterations": int(descent.nit),
                 "rest_newton_iterations": int(region.nit) + newton_iterations,
                 "rest_gradient": float(residual)}


def curvature_range(metric_loss, phi):
    """(λ_min, λ_max) of ∇²L̂(φ) by Lanczos on HVPs; SolveError when λ_min ≤ 0 (not a minimum).

    Lanczos runs on the loss's Krylov-precision HVPs (float32 for a torch loss: half the time);
    each end is then the float64 Rayleigh quotient ρ = vᵀ∇²L̂v of its Ritz vector v, with the
    residual r = |∇²L̂v − ρv| (an eigenvalue lies in [ρ − r, ρ + r]; ρ ≥ λ_min always). A strict
    minimum needs ρ_min − r_min > 0: the bound, not the Ritz value, is tested."""
    n = len(phi)

    def hessian(v, krylov=False):
        return metric_loss.hvps(phi[None], np.asarray(v, float).reshape(1, -1), krylov=krylov)[0]

    if n == 1:
        largest = smallest = float(hessian(np.ones(1))[0])
        margin = 0.0
    else:
        operator = scipy.sparse.linalg.LinearOperator((n, n), matvec=lambda v: hessian(v, True), dtype=float)
        top = scipy.sparse.linalg.eigsh(operator, k=1, which="LA", tol=1e-6)[1][:, 0]
        largest, _ = _rayleigh(hessian, top)
        shifted = scipy.sparse.linalg.LinearOperator((n, n), matvec=lambda v: largest * v - hessian(v, True),
                                                     dtype=float)
        bottom = scipy.sparse.linalg.eigsh(shifted, k=1, which="LA", tol=1e-6, maxiter=20 * n)[1][:, 0]
        smallest, margin = _rayleigh(hessian, bottom)
    if not smallest - margin > 1e-12 * max(abs(largest), 1e-300):
        raise SolveError(f"the rest point is not a strict minimum of the loss (smallest curvature "
                         f"{smallest:.3g} ± {margin:.2g}): the infinite-horizon path has no stable rest "
                         "there",
                         NOT_A_MINIMUM, 0)
    return smallest, largest


def _rayleigh(hessian, vector):
    """(ρ, r): the float64 Rayleigh quotient of ``vector`` and its residual norm."""
    vector = vector / np.linalg.norm(vector)
    image = hessian(vector)
    rho = float(vector @ image)
    return rho, float(np.linalg.norm(image - rho * vector))
