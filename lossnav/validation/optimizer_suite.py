"""Named optimizers that ``lossnav validate`` checks against a scenario's reference path.

A scenario lists them in ``checked_optimizers`` (digits_mlp: all three); for each,
:func:`lossnav.validation.validate_optimizer` runs it at Δt, Δt/2, Δt/4 over the same window the
rules use (:mod:`lossnav.validation.rules`: Δt a tenth of the reference's fastest time scale,
``STEPS`` steps) and reports its distance to the optimal path and its observed order in Δt.
The step sizes are mapped from the OCP's (η, k, γ) (Vastola, Gershman & Rajan 2025, Eq. 2):

==========  =================================================  ============================
name        optimizer                                          declared limit (criterion)
==========  =================================================  ============================
sgd         torch.optim.SGD(lr = ηkΔt/γ)                       gradient flow θ̇ = −(ηk/γ)∇L:
                                                               must converge (order ≥ 0.5)
adam        torch.optim.Adam(lr = s·ηkΔt/γ), s = RMS of        none: reported (its limit is
            ∇L(θ0), so its first step has SGD's RMS size       a sign-like flow, not these)
mpc         learning_rules.RecedingHorizon(lr = Δt, η, k, γ)   none: reported (a local model
                                                               of the OCP, re-planned)
==========  =================================================  ============================

Each row: ``optimizer``, ``dts``, ``errors`` (against the optimal path, relative to |θ0 − θ*|),
``order`` (finest pair), ``limit``, ``order_limit``, ``passed`` (None without a criterion) and
``verdict``. The finest run of each optimizer is returned as a path for the report's figure.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from learning_rules import RecedingHorizon

from .optimizer_check import OptimizerCheckError, run_optimizer, validate_optimizer
from .rules import STEPS, _step


def _rates(scenario):
    problem = scenario.problem
    if problem.gamma <= 0:
        raise OptimizerCheckError(f"{scenario.name}: sgd and adam need gamma > 0 (lr = ηkΔt/γ)")
    return problem.eta * problem.k / problem.gamma


def _sgd(scenario, theta0):
    rate = _rates(scenario)
    return (lambda params, dt: torch.optim.SGD(params, lr=rate * dt)), "gradient_flow"


def _adam(scenario, theta0):
    rate = _rates(scenario)
    theta = torch.tensor(theta0, dtype=torch.float64)
    scale = float(torch.func.grad(scenario.torch_loss)(theta).pow(2).mean().sqrt())
    return (lambda params, dt: torch.optim.Adam(params, lr=scale * rate * dt)), None


def _mpc(scenario, theta0):
    problem = scenario.problem
    return (lambda params, dt: RecedingHorizon(params, lr=dt, eta=problem.eta, k=problem.k,
                                               gamma=problem.gamma)), None


SUITE = {"sgd": _sgd, "adam": _adam, "mpc": _mpc}


def _reported(verdict: str) -> str:
    """An optimizer without a declared limit has no pass criterion: its verdict is reported, not a FAIL."""
    for prefix in ("FAIL: ", "pass: "):
        if verdict.startswith(prefix):
            verdict = verdict[len(prefix):]
    return f"reported (no criterion): {verdict}"


def check_optimizers(scenario, theta0, reference) -> tuple:
    """(rows, paths): one row per name in ``scenario.checked_optimizers`` (module docstring) and
    {"optimal": (t, θ) of the reference on the window, name: (t, θ) of its finest run}."""
    dt = _step(scenario, reference)
    horizon = min(STEPS * dt, float(reference.t[-1]))
    dts = [dt, dt / 2, dt / 4]
    window = np.linspace(0.0, horizon, 4 * STEPS + 1)
    rows, paths = [], {"optimal": (window, reference(window))}
    for name in scenario.checked_optimizers:
        if name not in SUITE:
            raise OptimizerCheckError(f"{scenario.name}: unknown optimizer {name!r} in checked_optimizers; "
                                      f"valid: {', '.join(SUITE)}")
        row = {"optimizer": name, "dts": dts}
        try:
            factory, limit = SUITE[name](scenario, theta0)
            check = validate_optimizer(factory, scenario, dts, horizon=horizon, limit=limit, theta0=theta0,
                                       reference=reference)
        except (OptimizerCheckError, ArithmeticError) as exc:
            row.update(errors=[], order=math.nan, limit=None, order_limit=None, passed=False,
                       verdict=f"FAIL: {' '.join(str(exc).split())}")
            rows.append(row)
            continue
        row.update(errors=[entry["error_reference"] for entry in check.rows], order=check.order_reference,
                   limit=check.limit, order_limit=check.order_limit,
                   passed=check.passed if limit is not None else None,
                   verdict=check.verdict if limit is not None else _reported(check.verdict))
        rows.append(row)
        finest, steps = dts[-1], int(round(horizon / dts[-1]))
        path, diverged = run_optimizer(factory, scenario, finest, steps, theta0)
        if diverged is None:
            paths[name] = (finest * np.arange(steps + 1), path)
    return rows, paths
