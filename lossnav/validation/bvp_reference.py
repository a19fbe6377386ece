"""An independent reference for the infinite-horizon path: scipy's BVP solver on the EL equations.

For a DiscountedOCP with a constant metric G and no drift the running cost is
ℓ = (1/2η)uᵀGu + kL(x), so with q = ℓ_u = Gu/η the Euler–Lagrange equation
d/dt ℓ_u − γℓ_u − ℓ_x = 0 is the first-order system

    ẋ = ηG⁻¹q,    q̇ = γq + k∇L(x),

and the optimal approach runs from x(0) = θ0 to the minimiser x* of L (the rest point,
where ∇L = 0). Here it is solved on [0, T] with the two-point conditions x(0) = θ0,
x(T) = x*, T = SPAN_DECAYS / r_min (r_min the slowest rate of the path linearised at x*,
r = √(γ²/4 + ηkμ) − γ/2 over the eigenvalues μ of G⁻¹∇²L(x*)), by
``scipy.integrate.solve_bvp`` (4th-order collocation with its own adaptive mesh, Kierzenka &
Shampine 2001). Forcing x(T) = x* instead of the true |x(T) − x*| ≈ e^{−r_min T}|θ0 − x*|
perturbs the path by that much times e^{−(γ + r)(T − t)}: nothing visible before the end.

Nothing of the engine is used (no transcription, no IPOPT, no rest-point Newton, no Riccati
tail): x* comes from scipy.optimize, gradients from CasADi. For checking ``ocp.solve`` on
problems nobody wrote by hand (tests/test_current_value.py, benchmarks/bench_infinite.py).
"""
from __future__ import annotations

import casadi
import numpy as np
import scipy.integrate
import scipy.optimize

SPAN_DECAYS = 30.0


class BVPReferenceError(RuntimeError):
    """The BVP solver did not converge (the reference is then not available)."""


def _loss_functions(problem):
    theta = casadi.SX.sym("theta", problem.dim)
    params = problem.layout.unpack(casadi.DM(problem.parameter_values()))
    loss = problem.loss_value(theta, params)
    gradient = casadi.gradient(loss, theta)
    hessian = casadi.jacobian(gradient, theta)
    return (casadi.Function("L", [theta], [loss]), casadi.Function("dL", [theta], [gradient]),
            casadi.Function("d2L", [theta], [hessian]))


def reference_path(problem, theta0, tol=1e-10):
    """(t → θ(t) on [0, T], x*, T) for ``problem`` (constant metric, no drift, γ > 0, a strictly
    convex loss); raises BVPReferenceError when solve_bvp does not converge."""
    if problem.drift is not None or problem.metric_function is not None:
        raise ValueError("the BVP reference needs a constant metric and no drift")
    loss, gradient, hessian = _loss_functions(problem)
    theta0 = np.asarray(theta0, float)
    found = scipy.optimize.minimize(lambda x: float(loss(x)), theta0,
                                    jac=lambda x: np.asarray(gradient(x)).ravel(),
                                    method="BFGS", options={"gtol": 1e-14, "maxiter": 10_000})
    x_star = found.x
    for _ in range(8):                                  # Newton polish of ∇L(x*) = 0
        x_star = x_star - np.linalg.solve(np.asarray(hessian(x_star)), np.asarray(gradient(x_star)).ravel())
    G = np.eye(problem.dim) if problem.metric is None else problem.metric
    eta, k, gamma = problem.eta, problem.k, problem.gamma
    curvatures = np.linalg.eigvals(np.linalg.solve(G, np.asarray(hessian(x_star)))).real
    rates = np.sqrt(gamma ** 2 / 4 + eta * k * curvatures) - gamma / 2
    span = SPAN_DECAYS / rates.min()
    G_inverse = np.linalg.inv(G)

    def rhs(t, y):
        x, q = y[:problem.dim], y[problem.dim:]
        grad = np.asarray(gradient.map(x.shape[1])(x)) if x.ndim == 2 else np.asarray(gradient(x)).ravel()
        return np.vstack([eta * G_inverse @ q, gamma * q + k * grad])

    def boundary(y0, yT):
        return np.concatenate([y0[:problem.dim] - theta0, yT[:problem.dim] - x_star])

    s = np.linspace(0, 1, 400)
    t = span * s ** 2                                   # finer early, where the path moves fastest
    offset = np.outer(theta0 - x_star, np.exp(-rates.min() * t))
    guess = np.vstack([x_star[:, None] + offset, G @ (-rates.min() * offset) / eta])
    result = scipy.integrate.solve_bvp(rhs, boundary, t, guess, tol=tol, max_nodes=200_000)
    if not result.success:
        raise BVPReferenceError(f"solve_bvp did not converge: {result.message}")
    return (lambda times: result.sol(np.asarray(times, float))[:problem.dim].T), x_star, span
