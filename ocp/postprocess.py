"""Post-processing of raw NLP solutions: samples, energies, costates; checked solves."""
from __future__ import annotations

import numpy as np

from .collocation import lagrange_basis, lagrange_derivative
from .errors import SolveError
from .trajectory import Trajectory


def from_solution(transcription, raw, scale, t_offset=0.0) -> Trajectory:
    """Samples, energies and costates of a raw NLP solution as a Trajectory."""
    tr, n = transcription, transcription.n
    X, U, x_end = tr.unpack(raw["x"])
    nu = tr.collocation_multipliers(raw)
    gamma, s_end = raw["p"][2 * n + 2], raw["p"][2 * n + 1]
    t_list, x_list, v_list, lam_list, elements = [], [], [], [], []
    for e, scheme in enumerate(tr.schemes):
        s0, h = s_end * tr.bounds[e], s_end * (tr.bounds[e + 1] - tr.bounds[e])
        taus = scheme.nodes
        last = e == len(tr.schemes) - 1
        with_end = scheme.scheme == "legendre" and not (last and s_end >= 1 and tr.time_map.infinite)
        if with_end:
            taus = np.append(taus, 1.0)
        s = s0 + h * taus
        t = tr.time_map.time(s, scale)
        slope = X[e] @ lagrange_derivative(scheme.nodes, taus) / (h * tr.time_map.rate(s, scale))
        states = X[e] @ lagrange_basis(scheme.nodes, taus)
        weights = scheme.quadrature
        discount = np.exp(-gamma * t[1:1 + scheme.degree])
        with np.errstate(divide="ignore", invalid="ignore"):
            lam_points = -nu[e] / (weights * discount)
        lam = lam_points @ lagrange_basis(scheme.points, taus)
        if e > 0:  # the start node is the previous element's last sample
            t, states, slope, lam = t[1:], states[:, 1:], slope[:, 1:], lam[:, 1:]
        t_list.append(t)
        x_list.append(states.T)
        v_list.append(slope.T)
        lam_list.append(lam.T)
        stop = sum(len(x) for x in t_list) - 1
        start = stop - len(taus) + 1
        elements.append((start, stop, t_offset, scale if tr.time_map.infinite else 0.0))
    t = np.concatenate(t_list) + t_offset
    theta, velocity = np.vstack(x_list), np.vstack(v_list)
    costate = np.vstack(lam_list)
    costate[0] = tr.initial_costate(raw)
    kinetic, potential, dl_du = pointwise(tr, t, theta, velocity, raw)
    unusable = ~np.isfinite(costate).all(axis=1) | (np.exp(-gamma * (t - t_offset)) < 1e-250)
    costate[unusable] = -dl_du[unusable]   # discount underflow: maximum principle instead
    stats = {"success": raw["success"], "status": raw["status"], "iterations": raw["iterations"],
             "build_time": tr.build_time, "solve_time": raw["solve_time"],
             "mesh": {"intervals": tr.mesh.intervals, "degree": tr.mesh.degree,
                      "scheme": tr.mesh.scheme, "map": tr.time_map.name, "scale": scale}}
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=costate, objective=raw["f"], elements=np.array(elements, float),
                      stats=stats)


def pointwise(tr, t, theta, velocity, raw):
    n = tr.n
    params = raw["p"][2 * n + 2:]
    m = len(t)
    pointwise = tr._post.map(m)
    kinetic, potential, dl_du, _ = pointwise(t.reshape(1, -1), theta.T, velocity.T, np.tile(params[:, None], (1, m)))
    return (np.asarray(kinetic).ravel(), np.asarray(potential).ravel(), np.asarray(dl_du).T)


def checked_solve(tr, theta0, params, scale, thetaT, guess, s_end=1.0):
    raw = tr.solve(theta0, params, scale, thetaT, guess, s_end)
    if not raw["success"]:
        try:
            last = from_solution(tr, raw, scale)
        except Exception:  # a diverged iterate may not even post-process
            last = None
        raise SolveError("IPOPT did not converge", raw["status"], raw["iterations"], last)
    return raw


def velocity_from_costate(tr, t, theta, lam, u, params, iterations=20):
    """u = argmin ℓ(t, θ, u) + λᵀu by Newton's method (exact in one step for quadratic ℓ)."""
    for _ in range(iterations):
        _, _, grad, hess = tr._post(t, theta, u, params)
        step = np.linalg.solve(np.asarray(hess), np.asarray(grad).ravel() + lam)
        u = u - step
        if np.linalg.norm(step) <= 1e-15 * (1 + np.linalg.norm(u)):
            break
    return u
