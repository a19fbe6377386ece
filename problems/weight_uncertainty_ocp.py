"""The OCP of the weight-uncertainty scenario (Vastola, Gershman & Rajan 2025, App. I,
Eqs. 143–147) in the state x = (μ_1..μ_D, v_1..v_D): the Fisher metric of N(μ, diag v), the
expected loss of each task, the switch of task at t_s, and the Euler–Lagrange equations
derived by hand (docs/weight_uncertainty.md) as a residual to check collocation paths with.
The scenario (parameters, rest points, overdamped limit) is :mod:`problems.weight_uncertainty`.
"""
from __future__ import annotations

import casadi
import numpy as np

import ocp
from ocp.results.trajectory_algebra import acceleration

from . import ops
from .quadratic import symmetric_matrix


def _diagonal(H):
    """diag(H) as a vector (casadi, torch or numpy)."""
    return casadi.diag(H) if isinstance(H, (casadi.SX, casadi.MX, casadi.DM)) else H.diagonal()


def _tasks(x, params, t):
    """(a = μ − μ0, v, g, H) with the g and H (matrix) of the task active at time t (t None:
    the first task)."""
    dim = x.shape[0] // 2
    mu, v = x[:dim], x[dim:]
    g, H = params["g"], params["H"]
    if t is not None:
        after = t >= params["t_switch"]
        g = casadi.if_else(after, params["g_after"], g)
        H = casadi.if_else(after, params["H_after"], H)
    return mu - params["mu0"], v, g, H


def fisher_metric(x, **_):
    """G(x) = diag(1/v, 1/(2v²)): ½ẋᵀGẋ = μ̇²/(2v) + v̇²/(4v²), the KL rate of N(μ, v)."""
    v = x[x.shape[0] // 2:]
    return casadi.diag(casadi.vertcat(1 / v, 0.5 / v ** 2))


def expected_loss(x, g, H, mu0, **_):
    """E[L](μ, v) = gᵀa + ½aᵀHa + ½Σ H_ii v_i of the first task, for θ ~ N(μ, diag v) (the
    potential adds the entropy and the switch: :meth:`WeightUncertaintyOCP.loss_value`)."""
    dim = x.shape[0] // 2
    a, v = x[:dim] - mu0, x[dim:]
    return ops.dot(g, a) + 0.5 * ops.dot(a, H @ a) + 0.5 * ops.dot(_diagonal(H), v)


class WeightUncertaintyOCP(ocp.DiscountedOCP):
    """The App. I OCP in the state x = (μ, v); the loss depends on t through the task switch."""

    def __init__(self, weights, constants, gamma, eta, k, name="weight_uncertainty", switch=False):
        if not k > 0:
            raise ocp.ProblemError("k must be > 0 for weight_uncertainty (the rest variance is β/(kH)), "
                                   f"got {k}")
        super().__init__(dim=2 * weights, loss=expected_loss, gamma=gamma, eta=eta, k=k,
                         metric=fisher_metric, constants=constants, name=name)
        self.weights = weights
        self.switch = switch

    @property
    def state_names(self):
        return [f"mu[{i}]" for i in range(self.weights)] + [f"v[{i}]" for i in range(self.weights)]

    def replace(self, **changes):
        if "k" in changes and not float(changes["k"]) > 0:
            raise ocp.ProblemError(f"k must be > 0 for weight_uncertainty, got {changes['k']}")
        for key in ("H", "H_after"):
            if key in changes:
                changes[key] = symmetric_matrix(key, changes[key], definite=True)
        if "beta" in changes and not float(changes["beta"]) > 0:
            raise ocp.ProblemError(f"beta must be > 0, got {changes['beta']}")
        return super().replace(**changes)

    def loss_value(self, theta, params, t=None):
        """E_task(t)[L] − (β/2k)Σ log v − (its value at the task's rest point)."""
        a, v, g, H = _tasks(theta, params, t)
        k, beta, h = params["k"], params["beta"], casadi.diag(H)
        energy = expected_loss(theta, g, H, params["mu0"]) - beta / (2 * k) * casadi.sum1(casadi.log(v))
        v_rest = beta / (k * h)
        rest = (-0.5 * casadi.dot(g, casadi.solve(H, g)) + 0.5 * casadi.dot(h, v_rest)
                - beta / (2 * k) * casadi.sum1(casadi.log(v_rest)))
        return energy - rest

    def check_state(self, theta0):
        """θ0 = (μ, v) as a float array, or a ProblemError (wrong length, non-finite, v ≤ 0)."""
        theta0 = super().check_initial_state(theta0)
        variances = theta0[self.weights:]
        if np.any(variances <= 0):
            raise ocp.ProblemError(f"initial variances v must be > 0, got {variances.tolist()}")
        return theta0

    def check_initial_state(self, theta0):
        """As :meth:`check_state`; a problem with a task switch refuses ``ocp.solve``: the
        engine's mesh has no break point at t_s (the loss jumps inside an element). Use
        :func:`solve_switch`."""
        if self.switch:
            raise ocp.ProblemError("weight_uncertainty with a task switch is solved in two phases by "
                                   "problems.weight_uncertainty.solve_switch (ocp.solve and `lossnav "
                                   "solve` need a stationary task: drop t_switch)")
        return self.check_state(theta0)


# -- the Euler–Lagrange equations derived by hand (docs/weight_uncertainty.md) ------------------
def hand_residual(scenario, trajectory: ocp.Trajectory, after: bool = False):
    """Residuals of the hand-derived EL equations at the samples, (n, 2D), and the size of
    their largest term (n,):

        R_μ = μ̈ − (v̇/v + γ)μ̇ − ηk v ⊙ (g + Ha)
        R_v = v̈ − v̇²/v − γv̇ + μ̇² − ηv ⊙ (k H_ii v − β)

    for the first task (or the one after the switch)."""
    p, n = scenario.params, scenario.weights
    H, g = scenario.task_value("H", after, p), scenario.task_value("g", after, p)
    h = np.diag(H)
    gamma, eta, k, beta = p["gamma"], p["eta"], p["k"], p["beta"]
    x, u, a = trajectory.theta, trajectory.velocity, acceleration(trajectory)
    mu, v, dmu, dv, ddmu, ddv = x[:, :n], x[:, n:], u[:, :n], u[:, n:], a[:, :n], a[:, n:]
    shift = mu - np.array(p["mu0"])
    terms_mu = [ddmu, -(dv / v) * dmu, -gamma * dmu, -eta * k * v * (g + shift @ H.T)]
    terms_v = [ddv, -dv ** 2 / v, -gamma * dv, dmu ** 2, -eta * v * (k * h * v - beta)]
    residual = np.hstack([sum(terms_mu), sum(terms_v)])
    size = np.max(np.abs(np.concatenate([np.stack(terms_mu), np.stack(terms_v)])), axis=(0, 2))
    return residual, size
