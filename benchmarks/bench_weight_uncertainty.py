"""weight_uncertainty: the numbers of docs/weight_uncertainty.md, measured side by side in one run.

    .venv/bin/python benchmarks/bench_weight_uncertainty.py

1. Collocation checks: EL error of stationary solves, the hand-derived equations, rest variance.
2. The two-phase switch: receding windows against the engine's infinite horizon, mesh change.
3. WeightUncertainty against its limit (the overdamped flow) for Δt → 0, and against the
   collocation reference across a switch for γ → ∞ at η = γ, Δt = 0.4/γ.
"""
import itertools
import math
import time

import numpy as np

import ocp
from lossnav.validation.weight_uncertainty_study import joint_limit_study, run_on_scenario
from problems.task_switch import solve_switch
from problems.weight_uncertainty import WeightUncertaintyScenario
from problems.weight_uncertainty_ocp import hand_residual

SWITCH = dict(H=[4.0, 2.0], g=[-2.0, 1.0], H_after=[0.5, 0.25])


def order(errors):
    return ["—"] + [f"{math.log2(a / b):.2f}" for a, b in itertools.pairwise(errors)]


def collocation_checks():
    print("1. stationary solves (infinite horizon, default mesh 40 × 5)")
    print(f"{'gamma':>6} {'beta':>5} {'EL engine':>10} {'EL hand':>10} {'|v_end/(β/kH) − 1|':>20} "
          f"{'seconds':>8}")
    for gamma in (0.0, 0.25, 1.0):
        for beta in (1.0, 2.5):
            scenario = WeightUncertaintyScenario(H=[5.0, 0.3], g=[1.0, -0.6], beta=beta, k=1.5, gamma=gamma)
            start = time.perf_counter()
            path = ocp.solve(scenario.problem, scenario.theta0)
            seconds = time.perf_counter() - start
            window = path if "policy_from" not in path.stats else None
            hand, size = hand_residual(scenario, path)
            rest = np.abs(path.theta[-1, 2:] / scenario.rest_point()[2:] - 1).max()
            print(f"{gamma:6g} {beta:5g} {ocp.euler_lagrange_error(scenario.problem, path):10.1e} "
                  f"{np.abs(hand).max() / size.max():10.1e} {rest:20.1e} {seconds:8.1f}"
                  + ("" if window is not None else "   (EL over the policy continuation too)"))


def switch_checks():
    print("\n2. two-phase switch (t_s = 4, until 8): receding windows vs the engine's infinite horizon")
    scenario = WeightUncertaintyScenario(**SWITCH, t_switch=4.0, gamma=2.0, eta=2.0)
    t = np.linspace(0, 8, 161)
    start = time.perf_counter()
    infinite = solve_switch(scenario)
    t_inf = time.perf_counter() - start
    start = time.perf_counter()
    receding = solve_switch(scenario, until=8.0)
    t_rec = time.perf_counter() - start
    finer = solve_switch(scenario, until=8.0, mesh=ocp.Mesh(80))
    print(f"   infinite: {t_inf:.1f} s, EL {infinite.el_error():.1e}; receding: {t_rec:.1f} s, EL "
          f"{receding.el_error():.1e}; "
          f"max |Δx| receding vs infinite {np.abs(infinite(t) - receding(t)).max():.1e}; "
          f"mesh 40 → 80 change {np.abs(finer(t) - receding(t)).max():.1e}")


def optimizer_checks():
    print("\n3a. WeightUncertainty vs the overdamped flow (γ = η = 2, t_s = 4, [0, 8])")
    scenario = WeightUncertaintyScenario(**SWITCH, t_switch=4.0, gamma=2.0, eta=2.0)
    errors = []
    dts = (0.1, 0.05, 0.025, 0.0125)
    for dt in dts:
        t, x = run_on_scenario(scenario, dt, int(round(8 / dt)))
        errors.append(np.abs(x - scenario.overdamped_path(t)).max())
    for dt, error, o in zip(dts, errors, order(errors), strict=True):
        print(f"   Δt = {dt:<7g} max error {error:.3e}  order {o}")
    print("\n3b. against the collocation reference across the switch (η = γ, Δt = 0.4/γ, t_s = 4, [0, 8])")
    print(f"   {'gamma':>6} {'Δt':>8} {'rule vs coll.':>14} {'flow vs coll.':>14} {'rule vs flow':>13} "
          f"{'order':>6} {'EL coll.':>9}")
    for row in joint_limit_study():
        o = f"{row['order_vs_collocation']:.2f}" if "order_vs_collocation" in row else "—"
        print(f"   {row['gamma']:6g} {row['dt']:8.4f} {row['vs_collocation']:14.3e} "
              f"{row['flow_vs_collocation']:14.3e} {row['vs_flow']:13.3e} {o:>6} {row['el_error']:9.1e}")


if __name__ == "__main__":
    collocation_checks()
    switch_checks()
    optimizer_checks()
