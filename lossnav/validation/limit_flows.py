"""Limit flows of optimizers: what an optimizer with step Δt converges to as Δt → 0.

Used as ``limit`` of :func:`lossnav.validation.validate_optimizer`; each is a callable
``limit(scenario, t, theta0)`` → θ at the times t, shape (len(t), dim). The derivations
(which scaling of lr and momentum with Δt gives which limit ODE) are in
docs/learning_rules.md, "Which flow a rule converges to".

* :func:`gradient_flow`: θ̇ = −(ηk/γ)G⁻¹∇L, the limit of gradient descent with lr = ηkΔt/γ
  (and of the large-γ optimal rule);
* :func:`damped_flow`: θ̈ + cθ̇ = −a∇L from rest, the limit of heavy ball with α = aΔt²,
  β = 1 − cΔt.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import rule_runner


class LimitFlowError(ValueError):
    """A limit flow that does not apply (γ = 0 for gradient flow, bad coefficients) or failed."""


def gradient_flow(scenario, t, theta0):
    """θ̇ = −(ηk/γ)∇L, or −(ηk/γ)G⁻¹∇L with a constant metric, from θ0, at times t
    (:func:`lossnav.validation.rule_runner.limit_trajectory`, DOP853 at rtol 1e-12)."""
    name = "natural_gradient" if scenario.problem.metric is not None else "gradient_descent"
    try:
        return rule_runner.limit_trajectory(name, scenario, t, theta0)
    except ValueError as exc:   # γ = 0, a drift, a state-dependent metric
        raise LimitFlowError(f"gradient_flow limit: {exc}") from None


def damped_flow(damping: float, gain: float) -> Callable:
    """The limit flow θ̈ + cθ̇ = −a∇L(θ), θ(0) = θ0, θ̇(0) = 0 (c = ``damping``, a = ``gain``)
    as a ``limit`` for :func:`validate_optimizer`: heavy ball θ_{n+1} = θ_n − α∇L +
    β(θ_n − θ_{n−1}) with α = aΔt² and β = 1 − cΔt converges to it with order 1
    (docs/learning_rules.md, "Which flow a rule converges to"). Integrated by DOP853."""
    import scipy.integrate

    if not (math.isfinite(damping) and damping >= 0 and math.isfinite(gain) and gain > 0):
        raise LimitFlowError(f"damped_flow needs damping ≥ 0 and gain > 0, got {damping!r}, {gain!r}")

    def limit(scenario, t, theta0):
        gradient = torch.func.grad(scenario.torch_loss)
        dim = scenario.dim

        def rhs(_, state):
            theta, velocity = state[:dim], state[dim:]
            force = gradient(torch.tensor(theta, dtype=torch.float64)).numpy()
            return np.concatenate([velocity, -damping * velocity - gain * force])

        times = np.asarray(t, float)
        at_rest = np.concatenate([theta0, np.zeros(dim)])      # θ(0) = θ0, θ̇(0) = 0
        solution = scipy.integrate.solve_ivp(rhs, (0.0, float(times[-1])), at_rest,
                                             method="DOP853", t_eval=times, rtol=1e-11, atol=1e-13)
        if not solution.success:
            raise LimitFlowError(f"damped flow integration failed: {solution.message}")
        return solution.y[:dim].T

    limit.__name__ = f"damped_flow(c={damping:g}, a={gain:g})"
    return limit
