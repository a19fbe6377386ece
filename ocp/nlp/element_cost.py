"""The discounted cost of one collocation element as CasADi Functions (built once, then mapped).

On element [s0, s0 + h] of the mapped coordinate, with collocation points τ_i and quadrature
weights b_i (``ocp.collocation``), the cost is the quadrature

    Σ_i b_i h t'(s_i) e^{−γ t(s_i)} ℓ(t0 + t(s_i), X_i, U_i)

of the running cost ℓ = kinetic + potential (Vastola et al. 2025, Eq. 2). Its gradient and the
upper triangle of its exact Hessian are SX Functions of the element's variables, so the
transcription maps them over the elements instead of differentiating the mapped graph.
"""
from __future__ import annotations

import casadi


def scheme_groups(schemes) -> list:
    """Consecutive element ranges that share a node scheme (one mapped call each):
    a list of (scheme, [element indices])."""
    groups, current = [], [0]
    for e in range(1, len(schemes)):
        if schemes[e] is schemes[current[0]]:
            current.append(e)
        else:
            groups.append((schemes[current[0]], current))
            current = [e]
    groups.append((schemes[current[0]], current))
    return groups


def element_functions(problem, scheme, time_map):
    """Cost of one element; cost and gradient; the upper triangle of its exact Hessian, as
    Functions of (z, s0, h, scale, P): z the element's node states X (n × (d+1)) and velocities
    U (n × d), column-major; P the problem's parameter values."""
    n, d = problem.state_dim, scheme.degree
    z = casadi.SX.sym("z", n * (2 * d + 1))
    s0, h, scale = casadi.SX.sym("s0"), casadi.SX.sym("h"), casadi.SX.sym("scale")
    P = casadi.SX.sym("P", problem.layout.size)
    params = problem.layout.unpack(P)
    X = casadi.reshape(z[: n * (d + 1)], n, d + 1)
    U = casadi.reshape(z[n * (d + 1):], n, d)
    cost = 0
    for i, tau in enumerate(scheme.points):
        s = s0 + h * tau
        rate = time_map.rate(s, scale)
        t = time_map.time(s, scale)
        kinetic, potential = problem.running_cost(params["t0"] + t, X[:, i + 1], U[:, i], params)
        weight = scheme.quadrature[i] * h * rate * casadi.exp(-params["gamma"] * t)
        cost += weight * (kinetic + potential)
    hessian, gradient = casadi.hessian(cost, z)
    inputs = [z, s0, h, scale, P]
    return (casadi.Function("element_cost", inputs, [cost]),
            casadi.Function("element_gradient", inputs, [cost, gradient]),
            casadi.Function("element_hessian", inputs, [casadi.triu(hessian)]))
