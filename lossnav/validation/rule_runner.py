"""Run a learning rule on a scenario's torch loss: the bridge from optimizers to validation.

    from lossnav.validation.rule_runner import RULES, run_rule, convergence_order, limit_trajectory
    t, theta = run_rule("optimal_quadratic", problems.get("quadratic"), dt=0.1, steps=50)

Each rule's hyperparameters are mapped from the scenario's (η, k, γ, G, drift) and the
step Δt (float64 throughout):

=====================  ==========================================  =========================
rule                   optimizer and hyperparameters               scenarios
=====================  ==========================================  =========================
optimal_quadratic      OptimalQuadratic(lr=Δt, η, k, γ, metric=G,  no drift; constant or no
                       curvature="exact")                          metric
drift_compensated      DriftCompensated(lr=Δt, η, k, γ, metric=G,  linear drift f = Aθ (or
                       weight_decay=j if A = −jI else               none); constant or no
                       drift_matrix=A, curvature="exact")          metric
ballistic              Ballistic(lr=√(ηk)Δt, curvature="exact",    no drift, no metric
                       eps=0): θ ← θ − √(ηk)Δt·H^{−1/2}∇L
natural_gradient       NaturalGradient(lr=ηkΔt/γ, metric=G)        γ > 0, no drift
gradient_descent       torch.optim.SGD(lr=ηkΔt/γ)                  γ > 0, no drift, no metric
=====================  ==========================================  =========================

The three rules with ``curvature="exact"`` (optimal_quadratic, drift_compensated, ballistic)
form the D × D Hessian and its matrix functions at every step: they do not apply above
:data:`EXACT_CURVATURE_MAX_DIM` parameters (a network's loss), and :func:`applicability` says so.

At γ = 0 (and no weight decay) the optimal rules get ``damping=1e-12`` (a curvature floor;
their step diverges as the curvature → 0 there). Keyword ``options`` of :func:`run_rule`
override the mapped hyperparameters (e.g. ``curvature="hutchinson"``). A rule that does
not apply raises ValueError saying why (:func:`applicability` returns the reason).

Which trajectory each rule should follow (:func:`limit_trajectory`): optimal_quadratic and
drift_compensated follow the optimal path itself, exactly on linear–quadratic scenarios
for any Δt; the first-order rules are explicit Euler steps of a flow and converge to it
with order 1 in Δt: gradient_descent → θ̇ = −(ηk/γ)∇L (the large-γ limit),
natural_gradient → θ̇ = −(ηk/γ)G⁻¹∇L, ballistic → θ̇ = −√(ηk)|H|^{−1/2}∇L (the γ → 0 limit).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from learning_rules import Ballistic, DriftCompensated, NaturalGradient, OptimalQuadratic, kernels
from problems.checks import bounded, integer

from .orders import order

GAMMA_ZERO_DAMPING = 1e-12
HESSIAN_CHUNK = 32               # rows per vmapped reverse pass of limit_trajectory's Hessian
EXACT_CURVATURE_MAX_DIM = 1000   # a dense D × D Hessian and eigendecomposition per step: 8 MB, ~0.1 s


@dataclass(frozen=True)
class Rule:
    """A runnable rule: its optimizer, what it needs from a scenario, and its limit."""

    name: str
    optimizer: Callable
    needs_positive_gamma: bool
    allows_drift: bool
    allows_metric: bool
    limit: str
    exact_curvature: bool = False

    def hyperparameters(self, scenario, dt: float) -> dict:
        reason = applicability(self.name, scenario)
        if reason:
            raise ValueError(reason)
        problem = scenario.problem
        eta, k, gamma = problem.eta, problem.k, problem.gamma
        metric = None if problem.metric is None else torch.as_tensor(problem.metric, dtype=torch.float64)
        if self.name == "gradient_descent":
            return {"lr": eta * k * dt / gamma}
        if self.name == "natural_gradient":
            return {"lr": eta * k * dt / gamma, "metric": metric}
        if self.name == "ballistic":
            return {"lr": math.sqrt(eta * k) * dt, "curvature": "exact", "eps": 0.0}
        options = {"lr": dt, "eta": eta, "k": k, "gamma": gamma, "metric": metric, "curvature": "exact"}
        if self.name == "drift_compensated":
            options.update(_drift_options(scenario))
        if gamma == 0 and options.get("weight_decay", 0.0) == 0:
            options["damping"] = GAMMA_ZERO_DAMPING
        return options


RULES = {rule.name: rule for rule in (
    Rule("optimal_quadratic", OptimalQuadratic, False, False, True, "optimal path (exact on quadratics)",
         True),
    Rule("drift_compensated", DriftCompensated, False, True, True, "optimal path under a linear drift", True),
    Rule("ballistic", Ballistic, False, False, False, "θ̇ = −√(ηk)|H|^{−1/2}∇L (γ → 0)", True),
    Rule("natural_gradient", NaturalGradient, True, False, True, "θ̇ = −(ηk/γ)G⁻¹∇L (γ large)"),
    Rule("gradient_descent", torch.optim.SGD, True, False, False, "θ̇ = −(ηk/γ)∇L (γ large)"),
)}


def applicability(name: str, scenario) -> str:
    """Why rule ``name`` cannot run on ``scenario`` ("" when it can)."""
    rule = _rule(name)
    problem = scenario.problem
    if getattr(problem, "state_dim", problem.dim) != problem.dim:
        return f"{name} needs a scenario whose state is θ alone; {scenario.name} has extra state"
    if getattr(problem, "metric_function", None) is not None:
        return f"{name} needs a constant metric; {scenario.name} has a state-dependent one"
    if rule.exact_curvature and problem.dim > EXACT_CURVATURE_MAX_DIM:
        return (f"{name} forms the exact {problem.dim} × {problem.dim} Hessian at every step; it applies "
                f"up to D = {EXACT_CURVATURE_MAX_DIM} (use its curvature='hutchinson' in training)")
    if rule.needs_positive_gamma and problem.gamma <= 0:
        return (f"{name} needs gamma > 0: its learning rate ηkΔt/γ is the overdamped (large-γ) limit "
                f"and is undefined at gamma = 0; use ballistic or optimal_quadratic")
    if problem.drift is not None and not rule.allows_drift:
        return f"{scenario.name} has a drift, which {name} ignores; use drift_compensated"
    if problem.metric is not None and not rule.allows_metric:
        return (f"{scenario.name} has a metric, which {name} ignores; "
                "use natural_gradient or optimal_quadratic")
    if name == "drift_compensated" and problem.drift is not None:
        try:
            _drift_options(scenario)
        except ValueError as error:
            return str(error)
    return ""


def run_rule(name: str, scenario, dt: float, steps: int, theta0=None, **options):
    """Run rule ``name`` for ``steps`` steps of Δt = ``dt`` on ``scenario.torch_loss`` from θ0.

    Returns (t, theta): t = Δt·(0, 1, …, steps) of shape (steps + 1,) and the iterates,
    shape (steps + 1, dim), float64 numpy arrays. ``options`` override the mapped
    hyperparameters. Raises ValueError for an unknown rule or option, dt ≤ 0, steps < 1,
    a wrong θ0 or a scenario the rule does not apply to; :class:`DivergenceError` (at
    which step and why) when an iterate or the loss leaves the finite numbers or the
    optimizer skips a step.
    """
    rule = _rule(name)
    dt = bounded("dt", dt, 0.0, low_open=True)
    steps = integer("steps", steps, low=1)
    start = np.asarray(scenario.theta0 if theta0 is None else theta0, dtype=float).reshape(-1)
    if start.shape != (scenario.dim,) or not np.all(np.isfinite(start)):
        raise ValueError(f"theta0 must be {scenario.dim} finite numbers, got {start.tolist()}")
    hyperparameters = {**rule.hyperparameters(scenario, dt), **options}
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    try:
        optimizer = rule.optimizer([theta], **hyperparameters)
    except TypeError as error:
        raise ValueError(f"invalid option for {name}: {error}") from None

    path, failure = iterate(optimizer, theta, scenario.torch_loss, steps)
    if failure:
        step, reason = failure
        raise DivergenceError(name, step, steps, dt, reason)
    return dt * np.arange(steps + 1), path


def iterate(optimizer, theta, loss_fn, steps: int) -> tuple:
    """``steps`` steps of ``optimizer`` on ``loss_fn(theta)`` (a closure that zeroes, evaluates
    and back-propagates), θ a 1-D float64 tensor. Returns (path, failure): the iterates from
    θ(0), shape (steps + 1, dim), or up to the first untrustworthy one
    (:func:`_untrustworthy`), and failure None or (that step, 1-based; why)."""
    def closure():
        optimizer.zero_grad()
        loss = loss_fn(theta)
        loss.backward()
        return loss

    path = np.empty((steps + 1, theta.numel()))
    path[0] = theta.detach().numpy()
    for index in range(1, steps + 1):
        loss = optimizer.step(closure)
        path[index] = theta.detach().numpy()
        reason = _untrustworthy(path[index], loss, optimizer)
        if reason:
            return path[:index + 1], (index, reason)
    return path, None


class DivergenceError(ArithmeticError):
    """A rule's run that left the finite numbers (or whose optimizer had to skip a step): the
    path is not the rule's, so it is never returned. ``step`` is the first bad step (1-based)."""

    def __init__(self, rule, step, steps, dt, reason):
        hint = "" if "skipped" in reason else f"; Δt = {dt:g} is too large for this rule here (lower --dt)"
        super().__init__(f"{rule} diverged at step {step} of {steps} (t = {step * dt:g}): {reason}{hint}")
        self.rule, self.step, self.reason = rule, step, reason


def _untrustworthy(theta, loss, optimizer) -> str:
    """Why the iterate after a step cannot be trusted ("" when it can): a non-finite θ, a
    non-finite loss at the point the step started from, or a step the optimizer skipped."""
    if not np.all(np.isfinite(theta)):
        return f"θ is not finite ({np.array2string(theta, precision=3, threshold=6)})"
    if loss is not None:
        value = float(torch.as_tensor(loss).detach())
        if not math.isfinite(value):
            return f"the loss is {value}"
    if getattr(optimizer, "skipped_steps", 0):
        return "the optimizer skipped the step (non-finite gradient, curvature or update)"
    return ""


def convergence_order(name: str, scenario, dt: float, steps: int, reference_fn, theta0=None,
                      **options) -> dict:
    """Errors of rule ``name`` at Δt, Δt/2, Δt/4 against ``reference_fn`` and the observed order.

    ``reference_fn(t)`` maps times (n,) to states (n, dim) (e.g. ``scenario.analytic`` or
    :func:`limit_trajectory` bound to the rule). Each run covers [0, steps·Δt]; its error
    is max over the grid t_i = iΔt (i ≤ steps) of |θ_rule(t_i) − θ_ref(t_i)| / |θ0 − θ*|
    (θ* the scenario's fixed point; |θ0| or 1 when it has none). Returns
    ``{"rule", "dt", "steps", "errors", "orders", "order"}``: orders = log2 of successive
    error ratios, order = the last one, NaN when the errors are at round-off (≤ 1e-12:
    the rule is exact there, as optimal_quadratic on a quadratic).
    """
    start = np.asarray(scenario.theta0 if theta0 is None else theta0, dtype=float).reshape(-1)
    scale = _scale(scenario, start)
    grid = dt * np.arange(steps + 1)
    reference = np.asarray(reference_fn(grid), dtype=float).reshape(steps + 1, -1)
    steps_list, dts, errors = [], [], []
    for refinement in (1, 2, 4):
        _, path = run_rule(name, scenario, dt / refinement, steps * refinement, start, **options)
        errors.append(float(np.max(np.linalg.norm(path[::refinement] - reference, axis=1)) / scale))
        steps_list.append(steps * refinement)
        dts.append(dt / refinement)
    orders = [order(a, b) for a, b in itertools.pairwise(errors)]
    return {"rule": name, "dt": dts, "steps": steps_list, "errors": errors, "orders": orders,
            "order": orders[-1]}


def limit_trajectory(name: str, scenario, t, theta0=None, rtol: float = 1e-12, atol: float = 1e-14):
    """The continuous-time flow rule ``name`` discretises, at times t (n,) → (n, dim).

    Integrated with scipy's DOP853 (``rtol``, ``atol``) on velocities from the scenario's
    torch loss: optimal_quadratic / drift_compensated: the local optimal policy θ̇ = R(θ − θ*)
    of the quadratic model at θ (the optimal path itself on quadratics); ballistic:
    −√(ηk)|H|^{−1/2}∇L; natural_gradient: −(ηk/γ)G⁻¹∇L; gradient_descent: −(ηk/γ)∇L.
    """
    import scipy.integrate

    hyperparameters = _rule(name).hyperparameters(scenario, 1.0)
    start = np.asarray(scenario.theta0 if theta0 is None else theta0, dtype=float).reshape(-1)
    times = np.atleast_1d(np.asarray(t, dtype=float))
    problem = scenario.problem
    eta_k, gamma = problem.eta * problem.k, problem.gamma
    metric = None if problem.metric is None else torch.as_tensor(problem.metric, dtype=torch.float64)

    # reverse-over-reverse in chunks of HESSIAN_CHUNK rows: bitwise the unchunked Hessian, 16x faster
    # at D = 310 on a digits MLP (0.21 s vs 3.4 s: the unchunked vmap allocates D copies of the batch)
    hessian_of = torch.func.jacrev(torch.func.grad(scenario.torch_loss), chunk_size=HESSIAN_CHUNK)

    def velocity(_, state):
        theta = torch.tensor(state, dtype=torch.float64, requires_grad=True)
        gradient = torch.func.grad(scenario.torch_loss)(theta.detach())
        if name in ("gradient_descent", "natural_gradient"):
            if metric is not None:
                gradient = torch.linalg.solve(metric, gradient) if metric.ndim == 2 else gradient / metric
            return (-eta_k / gamma * gradient).numpy()
        hessian = hessian_of(theta.detach())
        if name == "ballistic":
            return (-math.sqrt(eta_k) * kernels.inverse_sqrt_apply(hessian, gradient, 0.0)).numpy()
        return kernels.optimal_velocity(
            hessian, gradient, theta.detach(), eta_k, gamma, metric,
            hyperparameters.get("weight_decay", 0.0), hyperparameters.get("drift_matrix"),
            hyperparameters.get("damping", 0.0)).numpy()

    solution = scipy.integrate.solve_ivp(velocity, (0.0, float(times.max())), start, method="DOP853",
                                         t_eval=times, rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"limit flow of {name} failed: {solution.message}")
    out = solution.y.T
    return out[0] if np.ndim(t) == 0 else out


def _drift_options(scenario) -> dict:
    """weight_decay j when f(θ) = −jθ, else drift_matrix A; ValueError if f is not linear."""
    if scenario.problem.drift is None:
        return {}
    rng = np.random.default_rng(0)
    spread = 1 + np.abs(scenario.theta0).max()
    points = [torch.tensor(scenario.theta0, dtype=torch.float64),
              torch.tensor(rng.normal(size=scenario.dim) * spread, dtype=torch.float64)]
    matrix = torch.func.jacrev(scenario.torch_drift)(points[0])
    for point in points:
        drift = scenario.torch_drift(point)
        other = torch.func.jacrev(scenario.torch_drift)(point)
        size = float(matrix.abs().max()) * (1 + float(point.abs().max())) + 1e-300
        off_line = float((drift - matrix @ point).abs().max())          # f(θ) ≠ Aθ
        off_jacobian = float((other - matrix).abs().max())              # ∂f/∂θ not constant
        if off_line > 1e-10 * size or off_jacobian > 1e-10 * size:
            raise ValueError(f"{scenario.name}'s drift is not linear (f(θ) = Aθ); "
                             "drift_compensated needs a linear drift")
    decay = -float(matrix[0, 0])
    identity = torch.eye(scenario.dim, dtype=torch.float64)
    if decay >= 0 and float((matrix + decay * identity).abs().max()) <= 1e-14 * max(decay, 1.0):
        return {"weight_decay": decay}
    return {"drift_matrix": matrix}


def _rule(name):
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}; valid: {', '.join(RULES)}") from None


def _scale(scenario, start) -> float:
    try:
        scale = float(np.linalg.norm(start - scenario.fixed_point()))
    except NotImplementedError:
        scale = float(np.linalg.norm(start))
    return scale if scale > 0 else 1.0


