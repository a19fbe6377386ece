"""Check any torch optimizer against the collocation reference: :func:`validate_optimizer`.

    from lossnav.validation import validate_optimizer
    check = validate_optimizer(lambda params, dt: torch.optim.SGD(params, lr=dt / gamma),
                               "quadratic", dts=[0.04, 0.02, 0.01], horizon=3.0, limit="gradient_flow")
    check.rows, check.order_reference, check.order_limit, check.verdict

An optimizer with step Δt is a discretisation of some continuous flow; as Δt → 0 its
iterates θ_n converge to that flow at the times t_n = nΔt. Which flow, the optimal path of
the scenario's OCP or another one, is what a user wants to know. For every Δt the
optimizer runs ``round(horizon/Δt)`` steps from θ0 on ``scenario.torch_loss`` (float64), and

* ``error_reference`` = max_n |θ_n − θ_opt(t_n)| / |θ0 − θ*|, θ_opt the mesh-converged
  collocation reference (:func:`lossnav.validation.reference.reference`), θ* the fixed point;
* ``error_limit`` the same against the declared limit flow, when one is declared:
  ``"gradient_flow"`` θ̇ = −(ηk/γ)G⁻¹∇L (the large-γ limit, G = I without a metric;
  :func:`lossnav.validation.rule_runner.limit_trajectory`), ``"optimal"`` the optimal path
  (the reference itself), or a callable ``limit(scenario, t, theta0) → (n, dim)`` such as
  :func:`lossnav.validation.limit_flows.damped_flow` (heavy ball's limit, docs/learning_rules.md,
  "Which flow a rule converges to");
* the observed orders p = log(e_coarse/e_fine)/log(Δt_coarse/Δt_fine) between successive Δt
  (:mod:`lossnav.validation.orders`); ``order_reference``/``order_limit`` are the finest pair's.

The verdict: the optimizer *converges* to a flow when its errors fall at every refinement
and the finest observed order is ≥ :data:`MIN_ORDER` (or the errors are at round-off: the
optimizer is exact there). ``passed`` is convergence to the declared limit, or to the
optimal path when no limit is declared.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

import ocp
import problems

from . import limit_flows
from .limit_flows import LimitFlowError
from .orders import ROUND_OFF, order
from .reference import reference as collocation_reference
from .rule_runner import iterate

MIN_ORDER = 0.5        # a first-order method shows ≈ 1; below 0.5 the error is not falling like Δt^p
LIMITS = ("gradient_flow", "optimal")
MAX_STEPS = 1_000_000


class OptimizerCheckError(LimitFlowError):
    """Bad input to :func:`validate_optimizer` (a factory that returns no optimizer, Δt ≤ 0,
    an unknown limit, a limit flow that does not apply, ...); the message says which."""


@dataclass
class OptimizerCheck:
    """The result of :func:`validate_optimizer`.

    ``rows``: one dict per Δt (coarse to fine) with ``dt``, ``steps``, ``error_reference``,
    ``error_limit`` (None without a limit), ``diverged`` (None or why), and from the second
    row on ``order_reference`` / ``order_limit`` against the previous Δt.
    """

    scenario: str
    params: dict
    theta0: list
    horizon: float
    limit: str | None
    rows: list = field(default_factory=list)
    order_reference: float = float("nan")
    order_limit: float | None = None
    converges_to_reference: bool = False
    converges_to_limit: bool | None = None
    passed: bool = False
    verdict: str = ""

    def to_dict(self) -> dict:
        """JSON-friendly: the fields above (``lossnav validate --optimizer --json`` prints it)."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}

    def table(self) -> str:
        """The rows as a small text table, then the verdict."""
        lines = [f"{'dt':>10} {'steps':>7} {'error_ref':>10} {'order':>6} {'error_limit':>11} {'order':>6}"]
        for row in self.rows:
            lines.append(f"{row['dt']:10.3g} {row['steps']:7d} {_show(row['error_reference']):>10} "
                         f"{_show(row.get('order_reference'), '.2f'):>6} {_show(row['error_limit']):>11} "
                         f"{_show(row.get('order_limit'), '.2f'):>6}" + (f"  diverged: {row['diverged']}"
                                                                          if row["diverged"] else ""))
        return "\n".join(lines + [self.verdict])


def validate_optimizer(factory: Callable, scenario, dts, horizon: float = 5.0, limit=None,
                       theta0=None, reference=None) -> OptimizerCheck:
    """Run ``factory(params, dt)`` at each Δt of ``dts`` on ``scenario`` and compare with the
    collocation reference and (``limit``) a declared limit flow (module docstring).

    ``scenario``: a :class:`problems.Scenario` or a registered name (its defaults).
    ``dts``: at least two distinct step sizes (sorted coarse to fine here). ``horizon``: the
    time span compared, [0, horizon]. ``limit``: None, ``"gradient_flow"``, ``"optimal"`` or a
    callable ``limit(scenario, t, theta0)`` → (len(t), dim). ``reference``: the scenario's
    optimal path from θ0 if already solved (an :class:`ocp.Trajectory`; default: solved here).
    Raises OptimizerCheckError on bad input, ocp.OCPError when the reference cannot be solved.
    """
    if isinstance(scenario, str):
        scenario = problems.get(scenario)
    if not isinstance(scenario, problems.Scenario):
        raise OptimizerCheckError(f"scenario must be a problems.Scenario or a registered name, "
                                  f"got {scenario!r}")
    if not callable(factory):
        raise OptimizerCheckError(f"factory must be callable (params, dt) -> torch.optim.Optimizer, "
                                  f"got {factory!r}")
    steps_for = _steps(dts, horizon)
    start = scenario.problem.check_initial_state(scenario.theta0 if theta0 is None else theta0)
    if getattr(scenario.problem, "state_dim", scenario.dim) != scenario.dim:
        raise OptimizerCheckError(f"{scenario.name} has state beyond θ (beliefs); an optimizer of θ alone "
                                  "cannot be compared with its optimal path")
    limit_fn, limit_label = _limit(limit)
    if reference is None:
        reference, _ = collocation_reference(scenario, start)
    scale = _scale(scenario, start, reference)
    result = OptimizerCheck(scenario.name, dict(scenario.params), start.tolist(), float(horizon), limit_label)
    for dt, steps in steps_for:
        grid = dt * np.arange(steps + 1)
        row = {"dt": dt, "steps": steps, "error_reference": math.inf,
               "error_limit": None if limit_fn is None else math.inf, "diverged": None}
        path, row["diverged"] = run_optimizer(factory, scenario, dt, steps, start)
        if row["diverged"] is None:
            row["error_reference"] = _error(path, _on_reference(reference, grid), scale)
            if limit_fn is not None:
                if limit_fn == "optimal":
                    target = _on_reference(reference, grid)
                else:
                    target = limit_fn(scenario, grid, start)
                row["error_limit"] = _error(path, np.asarray(target, float).reshape(path.shape), scale)
        result.rows.append(row)
    _orders(result, "reference")
    result.converges_to_reference = _converges(result.rows, "reference")
    if limit_fn is not None:
        _orders(result, "limit")
        result.converges_to_limit = _converges(result.rows, "limit")
    result.passed = result.converges_to_limit if limit_fn is not None else result.converges_to_reference
    result.verdict = _verdict(result)
    return result


def run_optimizer(factory, scenario, dt: float, steps: int, theta0) -> tuple:
    """(iterates (steps + 1, dim), None) or (partial path, why it diverged): ``steps`` steps
    of ``factory([θ], dt)`` on ``scenario.torch_loss`` from θ0, float64, with a closure."""
    theta = torch.tensor(np.asarray(theta0, float), dtype=torch.float64, requires_grad=True)
    try:
        optimizer = factory([theta], dt)
    except Exception as exc:   # user code: say whose call failed
        raise OptimizerCheckError(f"factory(params, dt={dt:g}) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise OptimizerCheckError(f"factory(params, dt) must return a torch.optim.Optimizer, "
                                  f"got {optimizer!r}")

    path, failure = iterate(optimizer, theta, scenario.torch_loss, steps)
    if failure:
        step, reason = failure
        return path, f"{reason} at step {step} (t = {step * dt:g})"
    return path, None


def _limit(limit):
    """(callable, "optimal" or None; label) for the ``limit`` argument."""
    if limit is None:
        return None, None
    if limit == "optimal":
        return "optimal", "optimal"
    if limit == "gradient_flow":
        return limit_flows.gradient_flow, "gradient_flow"
    if callable(limit):
        return limit, getattr(limit, "__name__", repr(limit))
    raise OptimizerCheckError(f"limit must be None, {' or '.join(map(repr, LIMITS))} or a callable "
                              f"limit(scenario, t, theta0), got {limit!r}")


def _steps(dts, horizon) -> list:
    try:
        values = sorted({float(dt) for dt in dts}, reverse=True)
    except (TypeError, ValueError):
        raise OptimizerCheckError(f"dts must be numbers, got {dts!r}") from None
    if len(values) < 2 or not all(math.isfinite(dt) and dt > 0 for dt in values):
        raise OptimizerCheckError(f"dts must be at least two distinct numbers > 0, got {dts!r}")
    try:
        horizon = float(horizon)
    except (TypeError, ValueError):
        raise OptimizerCheckError(f"horizon must be a number > 0, got {horizon!r}") from None
    if not (math.isfinite(horizon) and horizon > 0):
        raise OptimizerCheckError(f"horizon must be a finite number > 0, got {horizon!r}")
    out = []
    for dt in values:
        steps = int(round(horizon / dt))
        if steps < 1 or steps > MAX_STEPS:
            raise OptimizerCheckError(f"horizon/dt = {horizon / dt:g} steps at dt = {dt:g}; "
                                      f"need 1 to {MAX_STEPS}")
        out.append((dt, steps))
    return out


def _on_reference(reference: ocp.Trajectory, grid) -> np.ndarray:
    """The reference at the grid times; after its last time it rests at its end point."""
    inside = np.minimum(grid, reference.t[-1])
    return reference(inside)


def _scale(scenario, theta0, reference) -> float:
    try:
        target = scenario.fixed_point()
    except NotImplementedError:       # a plug-in without a declared fixed point: where the path rests
        target = reference.theta[-1]
    scale = float(np.linalg.norm(theta0 - target))
    return scale if scale > 0 else 1.0


def _error(path, target, scale) -> float:
    with np.errstate(over="ignore"):       # a finite path beyond 1e154 has an infinite error
        return float(np.max(np.linalg.norm(path - target, axis=1)) / scale)


def _orders(result: OptimizerCheck, key: str) -> None:
    rows, name = result.rows, f"error_{key}"
    for coarse, fine in itertools.pairwise(rows):
        finite = math.isfinite(coarse[name]) and math.isfinite(fine[name])
        fine[f"order_{key}"] = (order(coarse[name], fine[name], coarse["dt"] / fine["dt"])
                                if finite else float("nan"))
    setattr(result, f"order_{key}", rows[-1][f"order_{key}"])


def _converges(rows, key) -> bool:
    errors = [row[f"error_{key}"] for row in rows]
    if not all(math.isfinite(e) for e in errors):
        return False
    if max(errors) <= ROUND_OFF:
        return True                       # exact at every Δt
    falling = all(fine < coarse for coarse, fine in itertools.pairwise(errors))
    final = rows[-1][f"order_{key}"]
    return falling and (errors[-1] <= ROUND_OFF or final >= MIN_ORDER)


def _verdict(result: OptimizerCheck) -> str:
    diverged = [row for row in result.rows if row["diverged"]]
    if diverged:
        steps = ", ".join(format(row["dt"], "g") for row in diverged)
        return (f"FAIL: diverged at Δt = {steps} "
                f"({diverged[0]['diverged']}); use smaller steps")
    parts = [_phrase("the optimal path", result.rows, "reference", result.converges_to_reference)]
    if result.limit is not None and result.limit != "optimal":
        parts.insert(0, _phrase(f"the declared limit {result.limit}", result.rows, "limit",
                                result.converges_to_limit))
    return ("pass: " if result.passed else "FAIL: ") + "; ".join(parts)


def _phrase(what, rows, key, converges) -> str:
    errors = [row[f"error_{key}"] for row in rows]
    final = rows[-1][f"order_{key}"]
    if converges:
        return (f"exact on {what} (errors ≤ {ROUND_OFF:g})" if max(errors) <= ROUND_OFF
                else f"converges to {what} with order {final:.2f}")
    return (f"does not converge to {what} (error {errors[0]:.2e} → {errors[-1]:.2e}, order {final:.2f}: "
            "it discretises another flow)")


def _show(value, spec=".2e") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return format(value, spec)
