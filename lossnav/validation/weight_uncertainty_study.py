"""WeightUncertainty against the two-phase collocation reference across a task switch
(Vastola, Gershman & Rajan 2025, App. I; docs/weight_uncertainty.md §5).

:func:`run_on_scenario` runs :class:`learning_rules.WeightUncertainty` on the quadratic task
losses of a ``weight_uncertainty`` scenario (switching at ``t_switch``); :func:`joint_limit_study`
checks that it converges to the optimal path as Δt → 0 along the overdamped scaling.
"""
from __future__ import annotations

import numpy as np
import torch

from learning_rules import WeightUncertainty
from ocp.control.receding import require_converged
from problems.task_switch import solve_switch
from problems.weight_uncertainty import WeightUncertaintyScenario

from .orders import observed_orders


def run_on_scenario(scenario, dt, steps, theta0=None, **options):
    """Run :class:`WeightUncertainty` on a ``problems.weight_uncertainty`` scenario.

    The loss is the current task's quadratic gᵀa + ½aᵀHa (a = μ − μ0); at step
    index t_switch/Δt (rounded; it must be an integer multiple of Δt to within 1e-9) the
    task switches to (g_after, H_after). Hyperparameters map from the scenario (lr = Δt,
    η, k, γ, β, init_variance = v0 per weight through a callable-free state set-up,
    curvature "exact"); ``options`` override them. Returns (t, x): t = Δt·(0..steps) and
    the iterates x = (μ, v), shape (steps + 1, 2D), float64 numpy arrays.
    """
    params, n = scenario.params, scenario.weights
    start = np.asarray(scenario.theta0 if theta0 is None else theta0, dtype=float).reshape(-1)
    if start.shape != (2 * n,) or not np.all(np.isfinite(start)) or np.any(start[n:] <= 0):
        raise ValueError(f"theta0 must be {2 * n} finite numbers with positive variances, "
                         f"got {start.tolist()}")
    switch_step = None
    if params["t_switch"] is not None:
        ratio = params["t_switch"] / dt
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
            raise ValueError(f"t_switch = {params['t_switch']} must be a multiple of dt = {dt}")
        switch_step = int(round(ratio))

    def tensor(key, after):
        return torch.tensor(scenario.task_value(key, after, params), dtype=torch.float64)
    tasks = [(tensor("g", False), tensor("H", False)), (tensor("g", True), tensor("H", True))]
    mu0 = torch.tensor(params["mu0"], dtype=torch.float64)
    mu = torch.tensor(start[:n], dtype=torch.float64, requires_grad=True)
    hyper = {"lr": dt, "eta": params["eta"], "k": params["k"], "gamma": params["gamma"],
             "beta": params["beta"], "curvature": "exact", "init_variance": float(start[n:].min()),
             **options}
    optimizer = WeightUncertainty([mu], **hyper)
    optimizer.variances([mu])[0].copy_(torch.tensor(start[n:], dtype=torch.float64))
    task = [0]

    def closure():
        optimizer.zero_grad()
        g, H = tasks[task[0]]
        shift = mu - mu0
        loss = (g * shift).sum() + 0.5 * (shift * (H @ shift)).sum()
        loss.backward()
        return loss

    path = np.empty((steps + 1, 2 * n))
    path[0] = start
    for index in range(1, steps + 1):
        if switch_step is not None and index - 1 >= switch_step:
            task[0] = 1
        optimizer.step(closure)
        path[index, :n] = mu.detach().numpy()
        path[index, n:] = optimizer.state[mu]["variance"].numpy()
    return dt * np.arange(steps + 1), path


# the overdamped scaling of the optimizer study: η = γ (ρ = 1), Δt = JOINT_STEP/γ, switch at
# JOINT_SWITCH to an 8× flatter H with g kept, path on [0, JOINT_END]
JOINT = dict(H=[4.0, 2.0], g=[-2.0, 1.0], H_after=[0.5, 0.25])
JOINT_SWITCH, JOINT_END, JOINT_STEP = 4.0, 8.0, 0.4


def joint_limit_study(gammas=(4.0, 8.0, 16.0, 32.0, 64.0)) -> list:
    """WeightUncertainty against the two-phase collocation reference across a switch as
    Δt → 0 along the overdamped scaling (η = γ, Δt = JOINT_STEP/γ): the error is
    O(Δt) + O(1/γ) (the rule discretises the overdamped flow, the optimal path's limit as
    γ → ∞), so it falls with order → 1. Rows: factor (γ/γ_first), γ, Δt, max absolute
    errors over the path of the rule and the overdamped flow against collocation and of the
    rule against the flow, the reference's EL error and its unconverged windows; orders of
    the rule's error between successive rows. SolveError if a reference window did not converge."""
    rows = []
    for gamma in gammas:
        scenario = WeightUncertaintyScenario(**JOINT, t_switch=JOINT_SWITCH, gamma=gamma, eta=gamma)
        reference = solve_switch(scenario, until=JOINT_END)
        require_converged(reference.path)
        dt = JOINT_STEP / gamma
        t, x = run_on_scenario(scenario, dt, int(round(JOINT_END / dt)))
        exact, flow = reference(t), scenario.overdamped_path(t)
        rows.append({"factor": gamma / gammas[0], "gamma": gamma, "dt": dt,
                     "vs_collocation": float(np.abs(x - exact).max()),
                     "flow_vs_collocation": float(np.abs(flow - exact).max()),
                     "vs_flow": float(np.abs(x - flow).max()), "el_error": reference.el_error()})
    return observed_orders(rows, ("vs_collocation",))
