"""The default first guess of an infinite-horizon solve that starts where the loss is concave.

IPOPT's first iterate is the guess; the default holds θ0 constant. From a start in the concave
part of a loss (an eigenvalue of G⁻¹∇²L below zero at θ0, e.g. θ0 = 0.1 between the wells of
(θ² − 1)² + cθ) that iterate has an indefinite reduced Hessian: IPOPT regularises it, and the
regularisation then decays by a factor 3 per iteration, so the solve takes about 20 damped
iterations where a convex start takes 6 (benchmarks/bench_scaling.py, the concave start: D = 1000
in 24.6 s, 22 iterations, against 6.4 s, 6 iterations, from the guess below; the same optimum).

The guess then approaches, as e^{−t/c}, the rest point downhill from θ0: a descent of L from θ0
(scipy's L-BFGS-B, exact gradient from CasADi, no Hessian) polished by Newton's method on the
rest-point condition ℓ_x + γℓ_u = 0 (``ocp.horizons.rest_point``, which includes a drift's
bias). It picks the basin gradient descent from θ0 falls into, as the held guess's IPOPT
iterations do, only sooner; another basin needs an explicit ``guess``. Nothing changes for a
convex start, a guess given by the caller, γ = 0, a time-dependent cost or a state with more
than θ (beliefs), and a descent or Newton that fails leaves θ0 held.
"""
from __future__ import annotations

import casadi
import numpy as np
import scipy.optimize

from ..nlp.local_model import metric_curvatures
from .policy import time_cross_derivative
from .rest_point import rest_point

DESCENT_ITERATIONS = 500


def downhill_guess(problem, theta0):
    """The rest point downhill from θ0 when the loss is locally concave there (module
    docstring), else None (θ0 held)."""
    if problem.gamma <= 0 or problem.state_dim != problem.dim or time_cross_derivative(problem) is not None:
        return None
    try:
        if not np.min(metric_curvatures(problem, theta0)) < 0:
            return None
    except (np.linalg.LinAlgError, ValueError, RuntimeError):
        return None
    value_and_gradient = _loss_and_gradient(problem)
    with np.errstate(all="ignore"):
        try:
            descent = scipy.optimize.minimize(value_and_gradient, theta0, jac=True, method="L-BFGS-B",
                                              options={"maxiter": DESCENT_ITERATIONS})
        except (ValueError, ArithmeticError):
            return None
    if not np.all(np.isfinite(descent.x)):
        return None
    rest = rest_point(problem, descent.x, problem.parameter_values())
    return rest if rest is not None and np.all(np.isfinite(rest)) else None


def _loss_and_gradient(problem):
    """θ → (L(θ), ∇L(θ)) as floats and an array (one CasADi Function, built once per structure)."""
    cache = problem._structure.cache
    if "loss_and_gradient" not in cache:
        theta, P = casadi.SX.sym("theta", problem.dim), casadi.SX.sym("P", problem.layout.size)
        loss = problem.loss_value(theta, problem.layout.unpack(P))
        cache["loss_and_gradient"] = casadi.Function("loss_and_gradient", [theta, P],
                                                     [loss, casadi.gradient(loss, theta)])
    function, params = cache["loss_and_gradient"], problem.parameter_values()

    def evaluate(theta):
        value, gradient = function(theta, params)
        return float(value), np.asarray(gradient, float).ravel()
    return evaluate
