"""BeliefAdam against the flow it discretises and against the collocation reference
(Vastola, Gershman & Rajan 2025, App. H.2; docs/belief_adam.md).

* :func:`limit_flow`, :func:`run_optimizer`, :func:`optimizer_study`: the overdamped-belief
  flow that :class:`learning_rules.BeliefAdam` discretises, the optimizer run on the
  scenario's stream, and its error against the flow (order in Δt) and against the
  collocation reference (the flow's distance to the optimal path: the model error of the
  time-scale separation, :func:`separation_study`).
* :func:`joint_limit_study`: BeliefAdam converges to the collocation reference with order
  → 1 as Δt → 0 along the overdamped scaling γ ∝ 1/Δt (:func:`overdamped_scaling`).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

import ocp
from problems.belief_adam import BeliefAdamScenario

from .orders import observed_orders

# belief rates K = ξ²/(γσ²) = 0.2 ≪ γ = 10, stream time scale 3, θ rates ≈ 6: overdamped beliefs;
# k ≪ 1/σ1² keeps the optimism terms small
SEPARATED = {"gradient": [1.0, -0.5], "curvature": [1.0, 2.0], "noise": 1.0, "samples": 4,
             "sample_interval": 1.0, "seed": 3, "sigma1": 1.0, "sigma2": 1.0, "xi1": math.sqrt(2),
             "xi2": math.sqrt(2), "alpha1": 0.2, "alpha2": 0.2, "gamma": 10.0, "eta": 1e4, "k": 0.01}
SEPARATED_START = np.array([0.0, 0.0, 0.5, -0.3, 0.5, 0.8])
# compare on [0, 1.2] (the studies' references: receding windows, reference_path); a single
# finite-horizon NLP stops at 20/γ (beyond, e^{−γt} < 2e-9 leaves the path undetermined) and
# its free end bends the last ~1/γ (used by the tests' finite-horizon EL check)
STUDY_HORIZON, STUDY_WINDOW = 2.0, 1.2



def optimizer_options(scenario) -> dict:
    """Keyword arguments of ``BeliefAdam.from_model`` for this scenario (anchor θ̂ = θ(0))."""
    p = scenario.params
    return {key: p[key]
            for key in ("sigma1", "sigma2", "xi1", "xi2", "alpha1", "alpha2", "eta", "k", "gamma")}


def flow_rhs(scenario, t, x):
    """Right-hand side of the flow BeliefAdam discretises (learning_rules/belief_adam.py)."""
    from learning_rules import BeliefAdam

    c = BeliefAdam.model_coefficients(**optimizer_options(scenario))
    n = scenario.coordinates
    theta, m, v = x[:n], x[n:2 * n], x[2 * n:]
    d, e = theta - scenario.problem.constants["anchor"], scenario.observations(t)[0] - m
    dm = (c["mean_rate"] * e - c["mean_decay"] * m - c["coupling"] * 2 * e * (v - e * e)
          - c["mean_feedback"] * d)
    dv = c["variance_rate"] * (e * e - v) - c["variance_decay"] * v - c["variance_feedback"] * d * d
    eta_k, gamma = c["eta"] * c["k"], c["gamma"]
    dtheta = -eta_k * (m + v * d) / (np.sqrt(gamma ** 2 / 4 + eta_k * v) + gamma / 2)
    return np.concatenate([dtheta, dm, dv])


def limit_flow(scenario, times, start) -> np.ndarray:
    """The overdamped-belief flow from ``start`` at ``times`` (rtol 1e-11), (len(times), 3n)."""
    solution = solve_ivp(lambda t, x: flow_rhs(scenario, t, x), (0.0, float(times[-1])), start,
                         t_eval=times, method="DOP853", rtol=1e-11, atol=1e-13)
    if not solution.success:
        raise ocp.SolveError("the limit flow did not integrate", solution.message, 0)
    return solution.y.T


def run_optimizer(scenario, dt, t_end, start):
    """BeliefAdam.from_model on the scenario's stream: step n observes g(nΔt) as the gradient of
    the linear loss g(nΔt)·θ. Returns (t, states (steps + 1, 3n), optimizer)."""
    import torch

    from learning_rules import BeliefAdam

    n = scenario.coordinates
    steps = int(round(t_end / dt))
    theta = torch.tensor(start[:n], dtype=torch.float64, requires_grad=True)
    optimizer = BeliefAdam.from_model([theta], dt, **optimizer_options(scenario))
    optimizer.set_beliefs(theta, torch.tensor(start[n:2 * n]), torch.tensor(start[2 * n:]))
    t = dt * np.arange(steps + 1)
    g = torch.tensor(scenario.observations(t))
    states = [np.array(start, float)]
    for i in range(steps):
        optimizer.zero_grad()
        (g[i] * theta).sum().backward()
        optimizer.step()
        state = optimizer.state[theta]
        states.append(np.concatenate([theta.detach().numpy(), state["mean"].numpy(),
                                      state["variance"].numpy()]))
    return t, np.array(states), optimizer


def reference_path(scenario, start, mesh=None) -> ocp.Trajectory:
    """The infinite-horizon optimal path on [0, STUDY_WINDOW] by receding windows
    (:func:`ocp.control.receding.receding_windows`: windows of 25/γ keeping 5/γ, each on the stream's
    clock; ``mesh`` None refines each window until it converges, SolveError if one did not;
    a given ``mesh`` is used as it is, without a convergence check)."""
    from ocp.control.receding import receding_windows, require_converged

    return require_converged(receding_windows(scenario.problem, start, STUDY_WINDOW, mesh=mesh))


def optimizer_study(scenario=None, start=None, dts=(0.01, 0.005, 0.0025), mesh=None) -> dict:
    """Errors of BeliefAdam (max over [0, STUDY_WINDOW], all states, relative to the largest
    state change) against the limit flow and against the collocation reference, for each Δt;
    observed orders log2(e(Δt)/e(Δt/2)); and the flow's own distance to collocation."""
    scenario = scenario or BeliefAdamScenario(**SEPARATED)
    start = SEPARATED_START if start is None else np.asarray(start, float)
    reference = reference_path(scenario, start, mesh)
    grid = _study_grid(dts)
    flow = limit_flow(scenario, grid, start)
    exact = reference(grid)
    size = np.abs(exact - start).max()
    rows = []
    for dt in dts:
        t, states, optimizer = run_optimizer(scenario, dt, STUDY_WINDOW, start)
        on_grid = _on_grid(t, states, grid)
        rows.append({"dt": dt, "vs_flow": float(np.abs(on_grid - flow).max() / size),
                     "vs_collocation": float(np.abs(on_grid - exact).max() / size),
                     "variance_floors": optimizer.variance_floors})
    observed_orders(rows, ("vs_flow", "vs_collocation"))
    return {"rows": rows, "flow_vs_collocation": float(np.abs(flow - exact).max() / size),
            "el_error": ocp.euler_lagrange_error(scenario.problem, reference)}


def overdamped_scaling(factor) -> BeliefAdamScenario:
    """:data:`SEPARATED` with γ → sγ, ξ_i² → sξ_i², η → sη (s = ``factor``): the belief rates
    K_i = ξ_i²/(γσ_i²), the decays a_i → α_i, the optimism terms (k fixed) and the θ-rate
    ηkv/γ keep their limits, while the terms the overdamped beliefs drop (m̈/γ, v̈/γ, θ̈/γ)
    and the anticipation of the stream (over ~1/γ) shrink as 1/s."""
    p = SEPARATED
    return BeliefAdamScenario(**{**p, "gamma": p["gamma"] * factor, "xi1": p["xi1"] * math.sqrt(factor),
                                 "xi2": p["xi2"] * math.sqrt(factor), "eta": p["eta"] * factor})


def joint_limit_study(factors=(1, 2, 4, 8, 16, 32), dt=0.01) -> list:
    """BeliefAdam against the collocation reference as Δt → 0 along the overdamped scaling
    (:func:`overdamped_scaling` with s = ``factor`` and step Δt/s): the error is
    O(Δt) + O(1/γ), so it falls with order → 1. A causal rule cannot converge to the optimal
    path at fixed γ (the path anticipates the stream over ~1/γ, and the beliefs' inertia is
    dropped): there the error stops at the model error, :func:`optimizer_study`. The
    reference is :func:`reference_path`.
    Rows: factor, γ, Δt, errors (relative to the largest state change) of the rule and the
    limit flow against collocation and of the rule against the flow, the reference's EL
    error, its windows; and orders of the rule's error between successive factors."""
    rows = []
    grid = _study_grid([dt])
    for factor in factors:
        scenario = overdamped_scaling(factor)
        reference = reference_path(scenario, SEPARATED_START)
        exact = reference(grid)
        size = np.abs(exact - SEPARATED_START).max()
        flow = limit_flow(scenario, grid, SEPARATED_START)
        t, states, optimizer = run_optimizer(scenario, dt / factor, STUDY_WINDOW, SEPARATED_START)
        on_grid = _on_grid(t, states, grid)
        rows.append({"factor": factor, "gamma": scenario.params["gamma"], "dt": dt / factor,
                     "vs_collocation": float(np.abs(on_grid - exact).max() / size),
                     "flow_vs_collocation": float(np.abs(flow - exact).max() / size),
                     "vs_flow": float(np.abs(on_grid - flow).max() / size),
                     "el_error": ocp.euler_lagrange_error(scenario.problem, reference),
                     "windows": len(reference.stats["window_meshes"]),
                     "variance_floors": optimizer.variance_floors})
    return observed_orders(rows, ("vs_collocation",))


def _study_grid(dts):
    """Comparison times on [0, STUDY_WINDOW]: the steps of the coarsest Δt (every run visits them)."""
    count = int(round(STUDY_WINDOW / max(dts)))
    return np.linspace(0.0, STUDY_WINDOW, count + 1)


def _on_grid(t, states, grid):
    """The optimizer's states at the grid times, which must be among its step times."""
    index = np.round(grid / t[1]).astype(int)
    if index[-1] >= len(t) or not np.allclose(t[index], grid, rtol=0, atol=1e-9 * t[1]):
        raise ValueError("the comparison grid must consist of step times of every run")
    return states[index]


def separation_study(intervals=(1.0, 2.0, 4.0, 8.0), mesh=None) -> list:
    """The limit flow's distance to the optimal path (as in :func:`optimizer_study`) as the
    stream slows down (sample interval Δs): the overdamped beliefs drop m̈ ~ K·ġ against γṁ,
    an error O(1/(γΔs)), down to the floor of the other separations (K/γ, K/√(ηkv))."""
    rows = []
    grid = np.linspace(0.0, STUDY_WINDOW, 241)
    for interval in intervals:
        scenario = BeliefAdamScenario(**{**SEPARATED, "sample_interval": interval})
        exact = reference_path(scenario, SEPARATED_START, mesh)(grid)
        flow = limit_flow(scenario, grid, SEPARATED_START)
        error = np.abs(flow - exact).max() / np.abs(exact - SEPARATED_START).max()
        rows.append({"sample_interval": interval, "flow_vs_collocation": float(error)})
    return rows


def truncate(trajectory, t_end):
    """The elements of ``trajectory`` that end by ``t_end`` (for residuals inside a window)."""
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    keep = trajectory.elements[ends <= t_end + 1e-12]
    stop = int(keep[-1, 1]) + 1
    return ocp.Trajectory(t=trajectory.t[:stop], theta=trajectory.theta[:stop],
                          velocity=trajectory.velocity[:stop],
                          kinetic=trajectory.kinetic[:stop], potential=trajectory.potential[:stop],
                          costate=trajectory.costate[:stop], objective=trajectory.objective, elements=keep,
                          stats=trajectory.stats)
