"""The nonlinear stretch of an infinite-horizon approach as one boundary-value problem in current value.

Why. A window of the discounted NLP is accurate only while its weight e^{−γt} is far above
round-off, so each keeps about ln(1/KEEP_DISCOUNT)/γ time units (``ocp.infinite``). At large
γ the path is overdamped and slow (rates ≈ ηkλ/γ): the approach takes ∝ γ time units and
the windows ∝ γ² NLPs. The optimality conditions themselves carry no discount factor when
written in current value, so the whole stretch can be solved at once, on any span.

The conditions. With ẋ = u, an autonomous running cost ℓ(x, u) and q = ℓ_u (q = −λ, λ the
current-value costate ∇V of ``ocp.Trajectory``), the Euler–Lagrange equation
d/dt ℓ_u − γℓ_u − ℓ_x = 0 (``ocp.verification``) is the index-1 DAE

    ẋ = u,    q̇ = γq + ℓ_x(x, u),    q = ℓ_u(x, u)          on [t1, t1 + T],

with x(t1) = x1 and, at the end, the stable manifold of the LQ problem linearised at the
rest point x* (``ocp.rest_point``): q(T) = q* − P(x(T) − x*), q* = ℓ_u(x*, 0), P the
stabilising Riccati solution (the Hessian of V). That end condition is exact to
O(|x(T) − x*|²); the span T grows until the LQ tail's error bound at x(T) meets
``ocp.infinite.TAIL_TOLERANCE`` (the same test the windows use), so the path is as exact
as the tail that follows it.

The discretisation. Gauss–Legendre collocation of degree d on elements graded like the
algebraic map (uniform in s = t/(c + t)), solved by Newton's method with a backtracking
line search on |F| and one sparse LU per iteration (scipy's SuperLU); F and its exact
sparse Jacobian come from one CasADi element function mapped over the elements
(``ocp.current_value_collocation``). The mesh
is doubled until two successive solutions agree to MESH_TOLERANCE relative to |θ0 − x*|
(the error estimate, in ``stats``). Newton finds stationary paths: the bridge starts from
the first window of the NLP (a minimiser) continued by the LQ tail, and a solve that does
not converge returns None, so the receding windows carry on as before.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..nlp.collocation import element_scheme, lagrange_basis, lagrange_derivative
from ..nlp.refinement import double_until_agreed
from ..results.path import chebyshev_lobatto, from_samples
from . import current_value_collocation as collocated
from .rest_point import cost_gradients

DEGREE = 5
FIRST_ELEMENTS, MAX_ELEMENTS = 40, 640
MESH_TOLERANCE = 1e-9        # successive meshes agree to this, relative to |θ0 − x*|
MAX_SPANS = 12               # span doublings before giving up


class Mesh1D:
    """Element starts and widths on [t1, t1 + span], uniform in s = τ/(c + τ)."""

    def __init__(self, t1, span, scale, elements):
        s_end = span / (scale + span)
        s = np.linspace(0.0, s_end, elements + 1)
        edges = scale * s / (1 - s)
        edges[-1] = span
        self.t1, self.span, self.scale = t1, span, scale
        self.starts, self.widths = t1 + edges[:-1], np.diff(edges)

    def node_times(self, nodes):
        return (self.starts[:, None] + self.widths[:, None] * nodes[None, :]).ravel()


def _guess(problem, system, mesh, path_of, gradients, params):
    """z from a path t → x: X at the nodes, U from the element polynomials, Q = ℓ_u(X, ẋ)."""
    n, d, N = system.n, system.d, system.N
    nodes = element_scheme("legendre", d).nodes
    X = path_of(mesh.node_times(nodes)).reshape(N, d + 1, n)
    slopes = lagrange_derivative(nodes, nodes).T          # (d + 1, d + 1): x'(τ_i) = Σ_k ℓ_k'(τ_i) x_k
    velocity = np.einsum("ik,ekn->ein", slopes, X) / mesh.widths[:, None, None]
    flat_x, flat_u = X.reshape(-1, n), velocity.reshape(-1, n)
    if getattr(path_of, "q_of", None) is not None:     # a guess that knows its costate
        Q = path_of.q_of(mesh.node_times(nodes))
    else:
        columns = np.tile(params[:, None], (1, len(flat_x)))
        Q = np.asarray(gradients.map(len(flat_x))(flat_x.T, flat_u.T, columns)[1]).T
    blocks = [X.reshape(N, -1), Q.reshape(N, -1), velocity[:, 1:, :].reshape(N, -1)]
    return np.concatenate(blocks, axis=1).ravel()


def _interpolant(system, mesh, z, after):
    """t → x of a solution (the element polynomials), ``after`` beyond its span."""
    X = system.states(z)
    nodes = element_scheme("legendre", system.d).nodes
    t_end = mesh.t1 + mesh.span

    def path_of(t):
        t = np.atleast_1d(np.asarray(t, float))
        out = np.empty((len(t), system.n))
        inside = t <= t_end
        which = np.clip(np.searchsorted(mesh.starts, t[inside], "right") - 1, 0, system.N - 1)
        local = (t[inside] - mesh.starts[which]) / mesh.widths[which]
        basis = lagrange_basis(nodes, local)                  # (d + 1, m)
        out[inside] = np.einsum("km,mkn->mn", basis, X[which])
        if np.any(~inside):
            out[~inside] = after(t[~inside] - t_end)
        return out
    return path_of


def bridge(problem, path, window, tail, deadline, tolerance_bound):
    """The path from the end of ``path`` until the LQ tail's bound meets ``tolerance_bound``
    (a Trajectory piece starting at path.t[-1]) and its stats, or (None, stats) when Newton or
    the mesh refinement does not converge. ``window`` (the first NLP, past its kept part) and
    the LQ tail make the first guess."""
    params = problem.parameter_values()
    n, x_star = problem.state_dim, tail.rest
    x1, t1 = path.theta[-1], float(path.t[-1])
    distance = max(np.abs(path.theta[0] - x_star).max(), 1e-300)
    fixed_tail = (x1, x_star, tail.q_star, tail.riccati)
    gradients = cost_gradients(problem)
    rates = np.abs(tail.rates)
    span = max(2 * (window.t[-1] - t1), 10.0 / rates.real.min() if np.all(rates.real > 0) else 0.0, 1e-3)
    scale = 2.0 / np.sqrt(rates.min() * rates.max())
    lq_from_window = tail.path(window.theta[-1])

    def first_guess(t):
        t = np.asarray(t, float)
        out = np.empty((len(t), n))
        inside = t <= window.t[-1]
        out[inside] = window(t[inside])
        out[~inside] = lq_from_window(t[~inside] - window.t[-1])
        return out

    window_q = dataclasses.replace(window, theta=-window.costate)     # q = −λ, the window's own

    def first_guess_q(t):
        t = np.asarray(t, float)
        out = np.empty((len(t), n))
        inside = t <= window.t[-1]
        out[inside] = window_q(t[inside])
        out[~inside] = tail.q_star - (first_guess(t[~inside]) - x_star) @ tail.riccati.T
        return out
    first_guess.q_of = first_guess_q

    guess_path, stats = first_guess, {"newton_iterations": 0, "spans": [], "elements": []}
    for _ in range(MAX_SPANS):
        solution = _refined(problem, t1, span, min(scale, span / 4), guess_path, fixed_tail, params,
                            gradients, distance, deadline, stats)
        if solution is None:
            return None, stats
        system, mesh, z = solution
        end = element_scheme("legendre", DEGREE).continuity @ system.states(z)[-1]
        bound = tail.nonlinearity(end) * np.abs(end - x_star).max() / distance
        stats["spans"].append(span)
        if bound <= tolerance_bound:
            stats["tail_bound"] = float(bound)
            return _trajectory(problem, system, mesh, z), stats
        guess_path = _interpolant(system, mesh, z, tail.path(end))
        span *= 2
    return None, stats


def _refined(problem, t1, span, scale, guess_path, fixed_tail, params, gradients, distance, deadline, stats):
    """Solve on FIRST_ELEMENTS, double until two meshes agree to MESH_TOLERANCE
    (``ocp.nlp.refinement``); (system, mesh, z) or None."""
    def solve_on(elements, coarse):
        path_of = guess_path if coarse is None else _interpolant(
            *coarse, lambda tau: np.tile(fixed_tail[0], (len(tau), 1)))
        system, mesh = collocated.system(problem, elements, DEGREE), Mesh1D(t1, span, scale, elements)
        z0 = _guess(problem, system, mesh, path_of, gradients, params)
        solved = collocated.newton(system, z0, (*fixed_tail, mesh.widths, params), deadline)
        if solved is None:
            return None
        z, iterations = solved
        stats["newton_iterations"] += iterations
        stats["elements"].append(elements)
        return system, mesh, z

    def difference(coarse, fine):
        (coarse_system, _, coarse_z), (system, _, z) = coarse, fine
        start_of_elements = coarse_system.states(coarse_z)[:, 0, :]      # element starts of the coarse mesh
        estimate = float(np.abs(start_of_elements - system.states(z)[::2, 0, :]).max() / distance)
        stats["error_estimate"] = estimate
        return estimate

    result = double_until_agreed(solve_on, FIRST_ELEMENTS, difference,
                                 lambda estimate: estimate <= MESH_TOLERANCE,
                                 more=lambda elements, doublings: 2 * elements <= MAX_ELEMENTS)
    return result.solution if result.converged else None


def _trajectory(problem, system, mesh, z):
    """The solution as a Trajectory piece: each element sampled at d + 1 Chebyshev–Lobatto points."""
    X = system.states(z)
    nodes = element_scheme("legendre", system.d).nodes
    samples = chebyshev_lobatto(0.0, 1.0, system.d)
    values = np.einsum("km,ekn->emn", lagrange_basis(nodes, samples), X)
    slopes = np.einsum("km,ekn->emn", lagrange_derivative(nodes, samples), X) / mesh.widths[:, None, None]
    t = mesh.starts[:, None] + mesh.widths[:, None] * samples[None, :]
    first = np.arange(system.N) == 0                     # later elements share their first sample

    def pick(array):
        return np.concatenate([array[e, (0 if first[e] else 1):] for e in range(system.N)])

    return from_samples(problem, pick(t), pick(values), system.d + 1, objective=0.0, velocity=pick(slopes))
