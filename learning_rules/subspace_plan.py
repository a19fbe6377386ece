"""The host side of a :class:`learning_rules.RecedingHorizon` re-plan: read the subspace model
from the device once, and plan on it (numpy, CasADi + IPOPT).

On the subspace coordinates a the plan solves the learning OCP of Vastola, Gershman & Rajan
(2025, Eq. 2; App. E) for the model loss bᵀa + ½aᵀTa with the trust region |a(t)| ≤ ρ, over
S·Δt, with the terminal cost V(a) = ½aᵀPa + pᵀa, ηP = (γ²/4 + ηkT)^{1/2} − γ/2,
p = k(γ/2 + (γ²/4 + ηkT)^{1/2})⁻¹b (the Riccati solution of γV = kL − (η/2)|∇V|²). When the
unconstrained closed-form path a(t) = −(I − e^{Rt})T⁻¹b stays in the ball it *is* the
constrained optimum (a convex model in a convex set; each eigen-component grows monotonically,
so its end decides) and IPOPT is not called; when IPOPT fails or exceeds its budget the path
projected radially into the ball is used (a fallback, reported by the caller).
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from . import kernels


def read_model(T, b, basis, pending, dimension, check=None):
    """(T (m, m), b (m,), pending skips, finite) on the host from the device tensors, in one
    transfer (the re-plan's synchronisation). Rows of the basis that broke down (zero rows, see
    :mod:`learning_rules.local_model`) and the padding up to ``dimension`` get no force and unit
    curvature, so they plan no motion. ``check``: an optional device scalar (e.g. the sum of a
    new curvature average) that must be finite too, read in the same transfer."""
    size = basis.shape[0]
    parts = [T.reshape(-1), b, basis.square().sum(1), pending.reshape(1).to(T.dtype)]
    if check is not None:
        parts.append(check.reshape(1).to(T.dtype))
    values = torch.cat(parts).double().cpu().numpy()
    T_read, b_read = values[:size * size].reshape(size, size), values[size * size:size * (size + 1)]
    live = values[size * (size + 1):size * (size + 2)] > 0.5
    finite = bool(np.all(np.isfinite(T_read)) and np.all(np.isfinite(b_read)))
    if check is not None:
        finite = finite and bool(np.isfinite(values[-1]))
    T_full, b_full = np.eye(dimension), np.zeros(dimension)
    T_full[:size, :size][np.ix_(live, live)] = T_read[np.ix_(live, live)]
    b_full[:size][live] = b_read[live]
    skipped = values[size * (size + 2)]
    return T_full, b_full, int(skipped) if np.isfinite(skipped) else 0, finite


def model_loss(a, b, T, P, p):
    import casadi
    return casadi.dot(b, a) + 0.5 * casadi.dot(a, casadi.mtimes(T, a))


def model_value(a, b, T, P, p):
    import casadi
    return 0.5 * casadi.dot(a, casadi.mtimes(P, a)) + casadi.dot(p, a)


def build_planner(dimension, intervals, degree, max_iter, max_time):
    """(ocp.control.trust_region.TrustRegionPlanner, its ocp.DiscountedOCP) for an m-dimensional model;
    b, T, P, p are NLP parameters: built once, re-solved."""
    import ocp  # casadi only when a plan is first needed
    from ocp.control.trust_region import TrustRegionPlanner
    constants = {"b": np.zeros(dimension), "T": np.eye(dimension), "P": np.eye(dimension),
                 "p": np.zeros(dimension)}
    problem = ocp.DiscountedOCP(dimension, model_loss, gamma=1.0, constants=constants, name="subspace_model")
    ipopt = {"max_iter": max_iter}
    if max_time is not None:
        ipopt["max_cpu_time"] = max_time
    return TrustRegionPlanner(problem, intervals, degree, model_value, ipopt), problem


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def shared_planner(dimension, intervals, degree, max_iter, max_time):
    """(planner, problem, lock): :func:`build_planner`'s result, built once per process for each
    structure and shared by every optimizer (building the NLP costs tens of milliseconds, a
    re-plan's worth; a new optimizer per run would pay it again). A solve holds ``lock``: the
    solver keeps per-call statistics, so two threads must not solve on it at once."""
    key = (dimension, intervals, degree, max_iter, max_time)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = (*build_planner(*key), threading.Lock())
        return _SHARED[key]


def plan_path(T, b, group, planner_for):
    """(a(jΔt) for j = 0..S as an (S + 1, m) array, outcome) for the model (T, b) with the
    group's Δt (lr), S (plan_steps), ρ, γ, η, k, damping, negative_curvature, skip_inactive,
    plan_intervals. ``planner_for()`` returns (planner, problem, lock) as :func:`shared_planner`.
    outcome: {"attempted": IPOPT was called, "iterations", "failure": the reason of a fallback or None}."""
    dt, steps, radius = group["lr"], group["plan_steps"], group["trust_radius"]
    gamma, eta, k = group["gamma"], group["eta"], group["k"]
    lam, vectors = np.linalg.eigh(0.5 * (T + T.T))
    lam = kernels.effective_curvature(torch.as_tensor(lam), group["damping"],
                                      group["negative_curvature"]).numpy()
    times = dt * np.arange(steps + 1)
    closed = closed_path(vectors, lam, b, times, eta, k, gamma)
    outcome = {"attempted": False, "iterations": 0, "failure": None}
    if group["skip_inactive"] and np.linalg.norm(closed[-1]) <= radius:
        return closed, outcome
    root = np.sqrt(0.25 * gamma ** 2 + eta * k * lam)             # (γ²/4 + ηkλ)^{1/2}
    T_eff = (vectors * lam) @ vectors.T
    P = (vectors * (k * lam / (0.5 * gamma + root))) @ vectors.T   # ηP = root − γ/2, stable form
    p = vectors @ (k * (vectors.T @ b) / (0.5 * gamma + root))
    planner, problem, lock = planner_for()
    width = steps * dt / group["plan_intervals"]
    guess = closed_path(vectors, lam, b, planner.node_times[1:] * width, eta, k, gamma)
    guess *= np.minimum(1.0, 0.999 * radius / np.maximum(np.linalg.norm(guess, axis=1), 1e-300))[:, None]
    outcome["attempted"] = True
    try:
        values = problem.replace(gamma=gamma, eta=eta, k=k, b=b, T=T_eff, P=P, p=p).parameter_values()
        with lock:
            result = planner.solve(np.zeros(len(b)), width, radius, values, guess)
        outcome["iterations"] = result["iterations"]
        if not result["success"]:
            raise RuntimeError(f"IPOPT status {result['status']}")
        plan = planner.evaluate(result["nodes"], times / width)
        if not np.all(np.isfinite(plan)):
            raise RuntimeError("plan is not finite")
        return plan, outcome
    except Exception as exc:                      # budget exceeded, failure: closed-form fallback
        outcome["failure"] = str(exc)
        shrink = np.minimum(1.0, radius / np.maximum(np.linalg.norm(closed, axis=1), 1e-300))
        return closed * shrink[:, None], outcome


def closed_path(vectors, lam, b, times, eta, k, gamma):
    """a(t) = −(I − e^{Rt})T⁻¹b of the unconstrained model at ``times``: (len(times), m).

    Per eigenvalue λ ≥ 0 of T: a = −ψ_t(λ)·ηk·b with ψ_t = t·φ₁(rt)/(γ/2 + s), r = −ηkλ/(γ/2 + s),
    s = √(γ²/4 + ηkλ) — the stable kernel of :mod:`learning_rules.kernels`, vectorised over t."""
    eta_k = eta * k
    times = np.asarray(times, float)[:, None]
    denominator = 0.5 * gamma + np.sqrt(0.25 * gamma ** 2 + eta_k * lam)
    exponent = np.minimum(-eta_k * lam / denominator * times, -np.finfo(float).tiny)
    psi = times * (np.expm1(exponent) / exponent) / denominator
    return -(psi * (eta_k * (vectors.T @ b))) @ vectors.T
