"""Optional pieces of the one collocation NLP: the trust region and a terminal cost.

Trust region (a path constraint on the state, as rockit's ``subject_to``): at every
collocation point,

    |X_e,i − θ0|² / ρ² ≤ 1,

with ρ an NLP parameter. Its Jacobian depends on the variables, and its Hessian adds
Σ_j λ_j (2/ρ²) I on the state entries of point j to the Hessian of the Lagrangian.

Terminal cost: e^{−γ t(s_end)} Φ(θ(H)) on the end state, Φ(theta, **constants) written like
the loss on CasADi symbols (e.g. the infinite-horizon value of the unconstrained problem,
which makes a finite plan the infinite-horizon optimum: discounting is time-consistent).
"""
from __future__ import annotations

import casadi
import numpy as np

from ..errors import ProblemError


def point_state_indices(n, degree, intervals, block) -> np.ndarray:
    """Indices in V of the states at the collocation points, (n, N·d), element-major."""
    columns = [e * block + k * n + np.arange(n) for e in range(intervals) for k in range(1, degree + 1)]
    return np.array(columns).T


def trust_region_rows(V, indices, theta0, radius):
    """|X_j − θ0|²/ρ² at every collocation point j: an MX column (N·d,)."""
    states = casadi.reshape(V[indices.T.ravel().tolist()], indices.shape[0], indices.shape[1])
    offsets = states - casadi.repmat(theta0, 1, indices.shape[1])
    return casadi.sum1(offsets ** 2).T / radius ** 2


def terminal_cost_functions(problem, terminal_cost, time_map):
    """(cost, cost and gradient, Hessian triu) of e^{−γ t(s_end)} Φ(x_end) as SX Functions of
    (x_end, scale, s_end, P); ProblemError if Φ is not a scalar of the state."""
    if not callable(terminal_cost):
        raise ProblemError("terminal_cost must be None or callable: terminal_cost(theta, **constants)")
    n = problem.state_dim
    x, scale, s_end = casadi.SX.sym("x", n), casadi.SX.sym("scale"), casadi.SX.sym("s_end")
    P = casadi.SX.sym("P", problem.layout.size)
    params = problem.layout.unpack(P)
    value = casadi.SX(terminal_cost(x, **{key: params[key] for key in problem.constants}))
    if value.shape != (1, 1):
        raise ProblemError(f"terminal_cost must be a scalar, got shape {value.shape}")
    cost = casadi.exp(-params["gamma"] * time_map.time(s_end, scale)) * value
    hessian, gradient = casadi.hessian(cost, x)
    inputs = [x, scale, s_end, P]
    return (casadi.Function("terminal_cost", inputs, [cost]),
            casadi.Function("terminal_gradient", inputs, [cost, gradient]),
            casadi.Function("terminal_hessian", inputs, [casadi.triu(hessian)]))
