"""Algebra on :class:`ocp.Trajectory` pieces: cut, shift, the collocated part, discounted
integrals and accelerations, exact on each element's polynomial.

A Trajectory element is one polynomial in its local coordinate (``ocp.time_maps.
element_coordinate``: the algebraic map started at t_a, or t itself). Every operation here
evaluates those polynomials, never a linear interpolation, so a cut or a re-join keeps the
collocation accuracy. Used by the receding windows (``ocp.receding``) and the scenario-level
task switch.
"""
from __future__ import annotations

import numpy as np

from ..nlp.collocation import lagrange_basis, lagrange_derivative
from ..nlp.time_maps import element_coordinate, element_time
from .path import from_samples, running_cost
from .trajectory import Trajectory, concatenate


def cut(problem, trajectory: Trajectory, t_end: float) -> Trajectory:
    """``trajectory`` on [t_0, t_end]: the element containing t_end is the same polynomial
    sampled on its shortened range; past the last sample (at rest) the last state is held."""
    t_end = float(t_end)
    if t_end >= trajectory.t[-1]:
        if t_end == trajectory.t[-1]:
            return trajectory
        rest = np.tile(trajectory.theta[-1], (2, 1))
        hold = from_samples(problem, [trajectory.t[-1], t_end], rest, 2, objective=0.0,
                            velocity=np.zeros_like(rest))
        return concatenate(trajectory, hold)
    starts = trajectory.t[trajectory.elements[:, 0].astype(int)]
    e = int(np.searchsorted(starts, t_end, side="left")) - 1
    i0, i1, t_a, scale = trajectory.elements[e]
    i0, i1 = int(i0), int(i1)
    nodes_t = trajectory.t[i0:i1 + 1]
    nodes, _ = element_coordinate(nodes_t, t_a, scale)
    end, _ = element_coordinate(np.array([t_end]), t_a, scale)
    # Chebyshev–Lobatto samples of the shortened range (well conditioned for the interpolant)
    lobatto = (1 - np.cos(np.pi * np.arange(len(nodes)) / (len(nodes) - 1))) / 2
    new_local = nodes[0] + (end[0] - nodes[0]) * lobatto
    new_t = element_time(new_local, t_a, scale)
    new_t[0], new_t[-1] = nodes_t[0], t_end
    theta = lagrange_basis(nodes, new_local).T @ trajectory.theta[i0:i1 + 1]
    _, rate = element_coordinate(new_t, t_a, scale)
    velocity = (lagrange_derivative(nodes, new_local).T @ trajectory.theta[i0:i1 + 1]) * rate[:, None]
    t = np.concatenate([trajectory.t[:i0], new_t])
    theta = np.vstack([trajectory.theta[:i0], theta])
    velocity = np.vstack([trajectory.velocity[:i0], velocity])
    kinetic, potential, dl_du = running_cost(problem, t, theta, velocity)
    elements = np.vstack([trajectory.elements[:e], [[i0, i0 + len(new_t) - 1, t_a, scale]]])
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=-dl_du, objective=trajectory.objective, elements=elements,
                      stats={**trajectory.stats, "cut_at": t_end})


def shifted(trajectory: Trajectory, offset: float) -> Trajectory:
    """The same trajectory in time t + offset (for a stationary problem)."""
    elements = trajectory.elements.copy()
    elements[:, 2] += offset * (elements[:, 3] > 0)
    stats = dict(trajectory.stats)
    if "policy_from" in stats:
        stats["policy_from"] = stats["policy_from"] + offset
    return Trajectory(t=trajectory.t + offset, theta=trajectory.theta, velocity=trajectory.velocity,
                      kinetic=trajectory.kinetic, potential=trajectory.potential,
                      costate=trajectory.costate, objective=trajectory.objective,
                      elements=elements, stats=stats)


def collocated(trajectory: Trajectory) -> Trajectory:
    """The elements before the policy continuation (all of them when there is none)."""
    start = trajectory.stats.get("policy_from", np.inf)
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    keep = trajectory.elements[ends <= start + 1e-12 * max(1.0, abs(start))]
    if len(keep) == 0 or len(keep) == len(trajectory.elements):
        return trajectory
    return truncated(trajectory, len(keep) - 1)


def truncated(trajectory: Trajectory, last_element: int) -> Trajectory:
    """The first elements of ``trajectory``, up to and including ``last_element``."""
    stop = int(trajectory.elements[last_element, 1]) + 1
    return Trajectory(t=trajectory.t[:stop], theta=trajectory.theta[:stop],
                      velocity=trajectory.velocity[:stop], kinetic=trajectory.kinetic[:stop],
                      potential=trajectory.potential[:stop], costate=trajectory.costate[:stop],
                      objective=trajectory.objective, elements=trajectory.elements[: last_element + 1],
                      stats=dict(trajectory.stats))


def until(trajectory: Trajectory, t_keep: float) -> Trajectory:
    """The elements of ``trajectory`` that end by ``t_keep`` (at least the first): a window's
    kept part, where its discount weight is still visible (``ocp.horizons.infinite``)."""
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    return truncated(trajectory, max(int(np.searchsorted(ends, t_keep, "right")) - 1, 0))


def discounted_integral(problem, trajectory: Trajectory, origin: float = 0.0) -> float:
    """∫ e^{−γ(t − origin)} ℓ dt over the trajectory, by 20-point Gauss–Legendre on each
    element (in its local coordinate, where the integrand is smooth)."""
    gauss, weights = np.polynomial.legendre.leggauss(20)
    total = 0.0
    for i0, i1, t_a, scale in trajectory.elements:
        i0, i1 = int(i0), int(i1)
        nodes, _ = element_coordinate(trajectory.t[i0:i1 + 1], t_a, scale)
        points = nodes[0] + (nodes[-1] - nodes[0]) * (gauss + 1) / 2
        times = element_time(points, t_a, scale)
        _, rate = element_coordinate(times, t_a, scale)
        theta = lagrange_basis(nodes, points).T @ trajectory.theta[i0:i1 + 1]
        velocity = (lagrange_derivative(nodes, points).T @ trajectory.theta[i0:i1 + 1]) * rate[:, None]
        kinetic, potential, _ = running_cost(problem, times, theta, velocity)
        discount = np.exp(-problem.gamma * (times - origin))
        total += (nodes[-1] - nodes[0]) / 2 * np.sum(weights / rate * discount * (kinetic + potential))
    return float(total)


def acceleration(trajectory: Trajectory) -> np.ndarray:
    """θ̈ from the velocity samples, differentiating each element's polynomial (in its local
    coordinate, times d(local)/dt)."""
    out = np.empty_like(trajectory.velocity)
    for i0, i1, t_a, scale in trajectory.elements:
        idx = slice(int(i0), int(i1) + 1)
        nodes, rate = element_coordinate(trajectory.t[idx], t_a, scale)
        out[idx] = (lagrange_derivative(nodes, nodes).T @ trajectory.velocity[idx]) * rate[:, None]
    return out
