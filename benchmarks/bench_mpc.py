"""Benchmark: receding-horizon (MPC) closed loop against the open-loop infinite-horizon optimum.

Exponential discounting is time-consistent, so ``ocp.RecedingHorizonController`` re-planning every
Δt from the current state must reproduce the open-loop optimum ``ocp.solve(problem, θ0)``
as the planning horizon T_h grows (and, up to the mesh, at T_h = ∞). Cases:

* **quadratic**, H = diag(1, 10), γ = 1, θ0 = the scenario default;
* **double_well_2d** (the paper's Fig. 1), γ = 0.1, θ0 = (−0.6, 0.55); the first plan is
  guessed towards the global minimum (1.0575, 0) (IPOPT finds local optima only).

Per T_h (default meshes: elements of width Δt on finite horizons, 20 × 5 on the infinite
map): the closed-loop error max_t |θ_mpc(t) − θ_open(t)| over ``--steps`` intervals of Δt,
solves, fallbacks, IPOPT iterations and wall time per step. The last two lines per scenario
run with budgets of 5 and 3 IPOPT iterations: fallbacks are counted, the unconverged
iterate warm-starts the next step. On quadratic the error against the closed form
θ(t) = e^{Rt}θ0 is printed too (it separates MPC error from the reference's own error). Reports only.

Usage: ``python benchmarks/bench_mpc.py [--dt DT] [--steps S]``
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below
import ocp  # noqa: E402
import problems  # noqa: E402

CASES = [
    ("quadratic", {"H": [1, 10], "gamma": 1.0}, None, None),
    ("double_well_2d", {}, [-0.6, 0.55], [1.0575, 0.0]),
]
HORIZONS = [1.0, 2.0, 4.0, 6.0, 8.0, 12.0, math.inf]


def run_case(name, params, theta0, guess, dt, steps):
    scenario = problems.get(name, **params)
    problem = scenario.problem
    theta0 = scenario.theta0 if theta0 is None else np.asarray(theta0, float)
    reference = ocp.solve(problem, theta0, guess=guess)
    print(f"\n{name}: γ = {problem.gamma}, θ0 = {theta0.tolist()}, Δt = {dt}, {steps} steps "
          f"(t ≤ {dt * steps:g})")
    exact = scenario.analytic if scenario.has_analytic() else None
    if exact is not None:
        t_grid = np.arange(steps + 1) * dt
        print(f"open loop vs closed form: {np.abs(reference(t_grid) - exact(t_grid, theta0)).max():.2e} "
              f"(interpolated at t = kΔt), {np.abs(reference.theta - exact(reference.t, theta0)).max():.2e} "
              "(at its samples)")
    print(f"{'T_h':>6} {'budget':>8} {'error':>10} {'vs exact':>10} {'solves':>7} {'fallbacks':>9} "
          f"{'iters':>6} {'ms/step':>8}")
    runs = [(horizon, 200) for horizon in HORIZONS] + [(4.0, 5), (4.0, 3)]
    for horizon, max_iter in runs:
        mpc = ocp.RecedingHorizonController(problem, plan_horizon=horizon, dt=dt, max_iter=max_iter,
                                            guess=guess)
        start = time.perf_counter()
        closed = mpc.run(theta0, steps=steps)
        per_step = (time.perf_counter() - start) / steps
        error = np.abs(closed.theta - reference(closed.t)).max()
        stats = closed.stats
        versus = np.abs(closed.theta - exact(closed.t, theta0)).max() if exact is not None else math.nan
        print(f"{horizon:>6g} {max_iter:>8d} {error:>10.2e} {versus:>10.2e} {stats['solves']:>7d} "
              f"{stats['fallbacks']:>9d} {stats['iterations']:>6d} {1e3 * per_step:>8.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args(argv)
    for case in CASES:
        run_case(*case, args.dt, args.steps)


if __name__ == "__main__":
    main()
