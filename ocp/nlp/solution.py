"""Raw NLP solutions as Trajectories: samples, energies, costates (the one-window solve is
:mod:`ocp.nlp.window`)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..results.trajectory import Trajectory
from .collocation import element_scheme, lagrange_basis, lagrange_derivative


@lru_cache(maxsize=None)
def sample_matrices(scheme_name: str, degree: int, with_end: bool):
    """Sample positions τ of one element and the matrices mapping node values to samples:
    state values, state derivatives (d/dτ) and the interpolant through the collocation
    points (for the costate). Cached per scheme: they depend on nothing else."""
    scheme = element_scheme(scheme_name, degree)
    taus = np.append(scheme.nodes, 1.0) if with_end else scheme.nodes
    matrices = (taus, lagrange_basis(scheme.nodes, taus), lagrange_derivative(scheme.nodes, taus),
                lagrange_basis(scheme.points, taus))
    for array in matrices:
        array.setflags(write=False)
    return matrices


def from_solution(transcription, raw, scale, t_offset=0.0) -> Trajectory:
    """Samples, energies and costates of a raw NLP solution as a Trajectory.

    The costate at the collocation points is λ = −∂ℓ/∂u (the stationarity of the NLP's
    Lagrangian in the velocity; Biegler 2010, Sec. 10.4), interpolated to the other samples
    by the polynomial through the collocation points; at t = 0 it is ∇V(θ0), minus the
    multiplier of θ(0) = θ0.
    """
    tr, n = transcription, transcription.n
    p = raw["p"]
    params = tr.read(p, "problem")
    X, U, _ = tr.unpack(raw["x"], p)
    s_end = tr.read(p, "s_end")
    s0, h = tr.element_geometry(s_end)
    N, d = X.shape[0], X.shape[2] - 1

    # −∂ℓ/∂u at all collocation points in one call
    s_points = np.concatenate([s0[e] + h[e] * scheme.points for e, scheme in enumerate(tr.schemes)])
    t_points = tr.time_map.time(s_points, scale)
    theta_points = X[:, :, 1:].transpose(0, 2, 1).reshape(-1, n)
    _, _, dl_du_points = tr.pointwise(t_points + t_offset, theta_points,
                                      U.transpose(0, 2, 1).reshape(-1, n), _columns(params, len(t_points)))
    lam_points = -dl_du_points.reshape(N, d, n)

    t_list, x_list, v_list, lam_list, elements, count = [], [], [], [], [], 0
    for e, scheme in enumerate(tr.schemes):
        last = e == N - 1
        with_end = scheme.scheme == "legendre" and not (last and s_end >= 1 and tr.time_map.infinite)
        taus, basis, derivative, point_basis = sample_matrices(scheme.scheme, scheme.degree, with_end)
        s = s0[e] + h[e] * taus
        t = tr.time_map.time(s, scale)
        states = X[e] @ basis
        slope = X[e] @ derivative / (h[e] * tr.time_map.rate(s, scale))
        lam = lam_points[e].T @ point_basis
        if e > 0:  # the start node is the previous element's last sample
            t, states, slope, lam = t[1:], states[:, 1:], slope[:, 1:], lam[:, 1:]
        t_list.append(t)
        x_list.append(states.T)
        v_list.append(slope.T)
        lam_list.append(lam.T)
        count += len(t)
        elements.append((count - len(taus), count - 1, t_offset, scale if tr.time_map.infinite else 0.0))
    t = np.concatenate(t_list) + t_offset
    theta, velocity = np.vstack(x_list), np.vstack(v_list)
    costate = np.vstack(lam_list)
    costate[0] = tr.initial_costate(raw)
    kinetic, potential, _ = tr.pointwise(t, theta, velocity, _columns(params, len(t)))
    stats = {"success": raw["success"], "status": raw["status"], "iterations": raw["iterations"],
             "build_time": tr.build_time, "solve_time": raw["solve_time"],
             "mesh": {"intervals": tr.mesh.intervals, "degree": tr.mesh.degree,
                      "scheme": tr.mesh.scheme, "map": tr.time_map.name, "scale": scale}}
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=costate, objective=raw["f"], elements=np.array(elements, float),
                      stats=stats)


def _columns(params, m):
    return np.broadcast_to(np.asarray(params, float)[:, None], (len(params), m))


def velocity_from_costate(tr, t, theta, lam, u, params, iterations=20):
    """u = argmin ℓ(t, θ, u) + λᵀu by Newton's method (exact in one step for quadratic ℓ)."""
    for _ in range(iterations):
        _, _, grad, hess, _ = tr._post(t, theta, u, params)
        step = np.linalg.solve(np.asarray(hess), np.asarray(grad).ravel() + lam)
        u = u - step
        if np.linalg.norm(step) <= 1e-15 * (1 + np.linalg.norm(u)):
            break
    return u
