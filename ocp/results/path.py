"""A Trajectory from a given path θ(t): closed-form solutions in the engine's own format.

An analytic solution is a callable t → θ(t). :func:`from_path` samples it on adaptive
elements (Chebyshev–Lobatto nodes, bisected until the element polynomial reproduces the
path to ``tol``), so velocity and acceleration come from differentiating exact
polynomial interpolants (spectral accuracy, no finite-difference step to choose), and
the result supports ``traj(t)``, :func:`ocp.euler_lagrange_residual`, ``save``.
"""
from __future__ import annotations

import casadi
import numpy as np

from ..errors import OCPError
from ..nlp.collocation import lagrange_basis, lagrange_derivative
from .trajectory import Trajectory

MAX_ELEMENTS = 4000


def chebyshev_lobatto(a: float, b: float, degree: int) -> np.ndarray:
    return a + (b - a) * (1 - np.cos(np.pi * np.arange(degree + 1) / degree)) / 2


def from_path(problem, path, t_end: float, tol: float = 1e-13, degree: int = 14,
              horizon: float = np.inf, method: str = "analytic") -> Trajectory:
    """Sample ``path`` (t array → (m, dim) array) on [0, t_end] as a Trajectory of ``problem``.

    Elements are bisected until interpolation at test points matches the path to
    ``tol`` relative to the path's range. The objective is the discounted running cost
    integrated by Gauss–Legendre quadrature on each element up to ``t_end`` (choose
    ``t_end`` where the path has converged: the rest is below the tolerance).
    """
    if not (np.isfinite(t_end) and t_end > 0):
        raise OCPError(f"t_end must be finite and > 0, got {t_end}")
    theta0 = np.atleast_2d(path(np.array([0.0])))[0]
    scale = max(np.abs(np.asarray(path(np.array([t_end]))) - theta0).max(), 1e-300)
    pending = [(0.0, t_end)]
    accepted = []
    while pending:
        a, b = pending.pop()
        nodes = chebyshev_lobatto(a, b, degree)
        values = np.asarray(path(nodes))
        test = (nodes[1:4] + nodes[:3]) / 2 if b - a > 0 else nodes[:1]
        error = np.abs(lagrange_basis(nodes, test).T @ values - np.asarray(path(test))).max()
        if error <= tol * scale or b - a <= 1e-12 * t_end:
            accepted.append((a, b, nodes, values))
        elif len(accepted) + len(pending) > MAX_ELEMENTS:
            raise OCPError(f"path could not be resolved to {tol:g} with {MAX_ELEMENTS} elements")
        else:
            pending += [((a + b) / 2, b), (a, (a + b) / 2)]
    accepted.sort(key=lambda item: item[0])
    return _assemble(problem, accepted, horizon, method)


def _assemble(problem, elements, horizon, method) -> Trajectory:
    t, theta, velocity, table = [], [], [], []
    objective, count = 0.0, 0
    running = _running_cost_function(problem)
    params = problem.parameter_values()
    gauss, weights = np.polynomial.legendre.leggauss(20)
    for e, (a, b, nodes, values) in enumerate(elements):
        slope = lagrange_derivative(nodes, nodes).T @ values
        keep = slice(1, None) if e else slice(None)
        t.append(nodes[keep]), theta.append(values[keep]), velocity.append(slope[keep])
        start = count - 1 if e else 0
        count += len(nodes[keep])
        table.append((start, count - 1, 0.0, 0.0))
        points = a + (b - a) * (gauss + 1) / 2
        kinetic, potential, _ = running(points, lagrange_basis(nodes, points).T @ values,
                                        lagrange_derivative(nodes, points).T @ values, params)
        objective += (b - a) / 2 * np.sum(weights * np.exp(-problem.gamma * points) * (kinetic + potential))
    t, theta, velocity = np.concatenate(t), np.vstack(theta), np.vstack(velocity)
    kinetic, potential, dl_du = running(t, theta, velocity, params)
    stats = {"success": True, "method": method, "horizon": horizon, "gamma": problem.gamma,
             "elements": len(elements)}
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=-dl_du, objective=float(objective), elements=np.array(table, float),
                      stats=stats)


def from_samples(problem, t, theta, samples_per_element, objective=None, velocity=None,
                 stats=None) -> Trajectory:
    """A Trajectory from samples of a path that is one polynomial per element: elements of
    ``samples_per_element`` consecutive samples, each sharing its end sample with the next
    (an integrator's dense output, a closed loop's control intervals, a rule's steps).

    velocity  : None: the derivative of each element's interpolating polynomial (at a shared
                sample, the later element's); or given (e.g. differences of a discrete rule).
    objective : None: the trapezoid rule on e^{−γ(t − t_0)}(kinetic + potential).
    """
    t, theta = np.asarray(t, float), np.asarray(theta, float)
    per = int(samples_per_element)
    if per < 2 or (len(t) - 1) % (per - 1):
        raise OCPError(f"{len(t)} samples do not form elements of {per} samples sharing their ends")
    elements = np.array([(i, i + per - 1, 0.0, 0.0) for i in range(0, len(t) - 1, per - 1)], float)
    if velocity is None:
        velocity = np.empty_like(theta)
        for i0, i1, _, _ in elements.astype(int):
            nodes = t[i0:i1 + 1]
            velocity[i0:i1 + 1] = lagrange_derivative(nodes, nodes).T @ theta[i0:i1 + 1]
    kinetic, potential, dl_du = running_cost(problem, t, theta, velocity)
    if objective is None:
        energy = np.exp(-problem.gamma * (t - t[0])) * (kinetic + potential)
        objective = float(np.sum(0.5 * np.diff(t) * (energy[1:] + energy[:-1])))
    return Trajectory(t=t, theta=theta, velocity=np.asarray(velocity, float), kinetic=kinetic,
                      potential=potential, costate=-dl_du, objective=objective,
                      elements=elements.reshape(-1, 4), stats=dict(stats or {}))


def running_cost(problem, t, theta, velocity):
    """Kinetic, potential (undiscounted) and ∂ℓ/∂θ̇ at samples (t (m,), θ and θ̇ (m, n))."""
    return _running_cost_function(problem)(np.asarray(t, float), np.asarray(theta, float),
                                           np.asarray(velocity, float), problem.parameter_values())


def _running_cost_function(problem):
    """(t, θ, θ̇) samples → kinetic, potential, ∂ℓ/∂θ̇ (undiscounted), via CasADi."""
    n = problem.state_dim
    t, x, u = casadi.SX.sym("t"), casadi.SX.sym("x", n), casadi.SX.sym("u", n)
    P = casadi.SX.sym("P", problem.layout.size)
    kinetic, potential = problem.running_cost(t, x, u, problem.layout.unpack(P))
    function = casadi.Function("running", [t, x, u, P],
                               [kinetic, potential, casadi.gradient(kinetic + potential, u)])

    def evaluate(times, states, velocities, params):
        m = len(times)
        out = function.map(m)(np.reshape(times, (1, m)), states.T, velocities.T,
                              np.tile(params[:, None], (1, m)))
        return np.asarray(out[0]).ravel(), np.asarray(out[1]).ravel(), np.asarray(out[2]).T
    return evaluate
