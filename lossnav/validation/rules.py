"""The learning rules of ``learning_rules`` checked against the references of one validation case.

For each rule that applies to the scenario (``runner.applicability``), with step Δt and
the halvings Δt/2, Δt/4 (``runner.convergence_order``):

* ``exact_rules`` (optimal_quadratic, drift_compensated) on linear–quadratic scenarios:
  the error against the analytic path at the grid times must be ≤ :data:`EXACT_TOLERANCE`
  for every Δt, and against the collocation reference ≤ the analytic tolerance;
* first-order rules on linear–quadratic scenarios: the observed order of convergence to the
  flow they discretise (``runner.limit_trajectory``) must lie in :data:`ORDER_RANGE`; their
  error against the optimal path itself is reported (it shows the regime where each rule
  holds: gradient descent for large γ, ballistic for γ → 0) without a pass criterion. On
  non-quadratic landscapes every rule's error against collocation is reported without a
  criterion, except on scenarios with ``rule_orders`` (a network's loss), where the first-order
  rules' order to their limit flow is measured and checked as on the linear–quadratic ones, and a
  rule that does not apply is a row saying why (``not_applicable``).
"""
from __future__ import annotations

import math

import numpy as np

EXACT_RULES = ("optimal_quadratic", "drift_compensated")
LINEAR_QUADRATIC = ("quadratic", "natural_gradient", "rotation", "weight_decay")
EXACT_TOLERANCE = 1e-10
ORDER_RANGE = (0.8, 1.3)
STEPS = 40


def check_rules(scenario, theta0, trajectory, tolerance) -> list:
    """One row per applicable rule: errors, order, pass/fail (None: no criterion).

    A run that leaves the finite numbers (:class:`rule_runner.DivergenceError`) is a row with
    ``diverged`` (the message: rule, step, reason) and an infinite error against collocation;
    it fails where the rule has a criterion and is reported where it has none (first-order
    rules at small γ on a double well: their step ηkΔt/γ is too large there)."""
    from . import rule_runner as runner  # torch is imported only when rules are validated
    rows = []
    base_dt = _step(scenario, trajectory)
    distance = max(np.linalg.norm(theta0 - scenario.fixed_point()), 1e-300)
    for name in runner.RULES:
        reason = runner.applicability(name, scenario)
        if reason:
            if scenario.rule_orders:      # a scenario that asks for the orders hears why a rule has none
                rows.append({"rule": name, "dt": base_dt, "passed": None, "vs_collocation": None,
                             "not_applicable": reason})
            continue
        exact = name in EXACT_RULES and scenario.name in LINEAR_QUADRATIC and scenario.has_analytic()
        first_order = name not in EXACT_RULES and (scenario.name in LINEAR_QUADRATIC or scenario.rule_orders)
        row = {"rule": name, "dt": base_dt}
        try:
            _rule_row(runner, row, scenario, theta0, trajectory, tolerance, distance, exact, first_order)
        except runner.DivergenceError as error:
            row.update(vs_collocation=math.inf, passed=False if exact or first_order else None,
                       diverged=" ".join(str(error).split()))
        rows.append(row)
    return rows


def _rule_row(runner, row, scenario, theta0, trajectory, tolerance, distance, exact, first_order):
    """Fill ``row`` for one rule: against the closed form (exact rules on linear–quadratic
    scenarios), the order to its limit flow (first-order rules there), against collocation."""
    name, study, dt = row["rule"], None, row["dt"]
    if exact:
        study = runner.convergence_order(name, scenario, dt, STEPS,
                                         lambda t: scenario.analytic(t, theta0), theta0=theta0)
        row["vs_analytic"] = max(study["errors"])
    elif first_order:
        study = _first_order_study(runner, name, scenario, theta0, dt)
        dt, order = study["dt"][0], study["order"]   # the step explicit Euler is stable at
        row["passed"] = (math.isnan(order) and max(study["errors"]) <= 1e-12) or \
            ORDER_RANGE[0] <= order <= ORDER_RANGE[1]
    else:   # non-quadratic landscapes: a local model or a limit flow, reported only
        row["passed"] = None
    row["dt"] = dt
    row["vs_collocation"] = _against_collocation(runner, name, scenario, theta0, dt, trajectory) / distance
    if exact:
        row["passed"] = row["vs_analytic"] <= EXACT_TOLERANCE and row["vs_collocation"] <= tolerance
    if study is not None:
        row.update(errors=study["errors"], order=study["order"])


def _against_collocation(runner, name, scenario, theta0, dt, trajectory) -> float:
    """max |θ_rule − θ_collocation| on the grid inside the collocated window: traj(t)
    between the samples of the policy continuation is a lower-order interpolant."""
    grid = dt * np.arange(STEPS + 1)
    window = grid <= min(trajectory.t[-1], trajectory.stats.get("policy_from", np.inf))
    _, path = runner.run_rule(name, scenario, dt, STEPS, theta0=theta0)
    return float(np.linalg.norm(path[window] - trajectory(grid[window]), axis=1).max())


def _first_order_study(runner, name, scenario, theta0, dt):
    """Convergence to the rule's limit flow; Δt divided by 4 until explicit Euler is in its
    asymptotic regime (coarse error ≤ 0.2: stiff flows need small steps)."""
    for _ in range(4):
        study = runner.convergence_order(
            name, scenario, dt, STEPS,
            lambda t: runner.limit_trajectory(name, scenario, t, theta0=theta0), theta0=theta0)
        if study["errors"][0] <= 0.2:
            break
        dt /= 4
    return study


def _step(scenario, trajectory) -> float:
    """Δt: a tenth of the fastest time scale of the reference path (its first samples)."""
    speed = np.linalg.norm(trajectory.velocity[0])
    distance = np.linalg.norm(trajectory.theta[0] - trajectory.theta[-1])
    rate = speed / distance if distance > 0 and speed > 0 else 1.0
    return float(0.1 / max(rate, 1e-3))
