"""Benchmark (c): re-solve after a parameter change against the first solve.

``ocp`` builds one transcription per problem *structure* (loss, metric and drift
callables, parameter layout, mesh, horizon kind) and caches it; γ, η, k, θ0 and the
problem constants are NLP parameters. So ``problem.replace(gamma=...)`` or a changed
constant re-solves without rebuilding, and ``guess=previous_trajectory`` starts IPOPT
from the previous path.

Cases (default mesh, 40 × 5 Legendre):

* **quadratic**, D = 5: L = ½(θ − μ)ᵀH(θ − μ), dense SPD H (condition number 100), H and
  μ passed as constants; θ0 = 0, μ = 1, γ = 1. Changes: γ → 1.1, and μ → 1.1·μ (a
  constant). Horizons: T = 4 with a free end, and infinite.
* **double well** (the paper's Fig. 1): L = (θ1² − 1)² + θ2² − θ1/2, θ0 = (−0.6, 0.55),
  γ = 0.1. Changes: γ → 0.11, and k → 1.1. Horizons: T = 4 with θ(4) = (1.0625, 0)
  fixed, and infinite with a free end.

Per case: the wall time of the first solve on a fresh problem (transcription build +
IPOPT + post-processing), of a re-solve of the changed problem from the default guess
("cold") and of a re-solve warm-started from the first trajectory ("warm"); IPOPT
iterations and NLP solves (on the infinite horizon with γ > 0 the path is continued by
the optimal policy, one small warm-started NLP per evaluation, see ``ocp.solver``);
whether a transcription was built by the re-solve (it must not be); the difference of
the warm and cold objectives (they must agree); and the speed-up first / warm.
Times are the best of ``--repeats`` runs (a fresh problem for each first solve).

Target (issue 2, "Benchmarks" (c)): a re-solve after a parameter change does not rebuild
and is faster than the first solve. This script reports; it never fails (benchmarks do
not gate CI).

Usage: ``python benchmarks/bench_resolve.py [--quick] [--repeats R]``; ``--quick`` runs
each measurement once.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below

import casadi  # noqa: E402
import numpy as np  # noqa: E402

import ocp  # noqa: E402


def quadratic_problem():
    D = 5
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    H = (Q * np.logspace(0, 2, D)) @ Q.T
    H = (H + H.T) / 2

    def loss(th, H, mu):
        return 0.5 * casadi.mtimes((th - mu).T, casadi.mtimes(H, th - mu))

    return ocp.DiscountedOCP(dim=D, loss=loss, gamma=1.0, constants={"H": H, "mu": np.ones(D)},
                             name="quadratic_5d")


def double_well_problem():
    return ocp.DiscountedOCP(dim=2, loss=lambda th: (th[0] ** 2 - 1) ** 2 + th[1] ** 2 - 0.5 * th[0],
                             gamma=0.1, name="double_well_2d")


CASES = [
    # name, problem factory, theta0, solve keywords, {label: replace keywords}
    ("quadratic 5-D, T=4 free end", quadratic_problem, np.zeros(5), {"horizon": 4.0},
     {"gamma 1 -> 1.1": {"gamma": 1.1}, "mu -> 1.1 mu": {"mu": 1.1 * np.ones(5)}}),
    ("quadratic 5-D, T=inf", quadratic_problem, np.zeros(5), {"horizon": math.inf},
     {"gamma 1 -> 1.1": {"gamma": 1.1}, "mu -> 1.1 mu": {"mu": 1.1 * np.ones(5)}}),
    ("double well, T=4 fixed end", double_well_problem, np.array([-0.6, 0.55]),
     {"horizon": 4.0, "terminal": [1.0625, 0.0]},
     {"gamma 0.1 -> 0.11": {"gamma": 0.11}, "k 1 -> 1.1": {"k": 1.1}}),
    ("double well, T=inf free end", double_well_problem, np.array([-0.6, 0.55]),
     {"horizon": math.inf},
     {"gamma 0.1 -> 0.11": {"gamma": 0.11}, "k 1 -> 1.1": {"k": 1.1}}),
]


def timed(function):
    t0 = time.perf_counter()
    result = function()
    return time.perf_counter() - t0, result


def run_case(factory, theta0, keywords, change, repeats):
    first_times, cold_times, warm_times = [], [], []
    for _ in range(repeats):
        problem = factory()
        t_first, first = timed(functools.partial(ocp.solve, problem, theta0, **keywords))
        first_times.append(t_first)
    changed = problem.replace(**change)
    cache = problem._structure.cache          # transcriptions of this structure
    built_before = len(cache)
    for _ in range(repeats):
        t_cold, cold = timed(functools.partial(ocp.solve, changed, theta0, **keywords))
        cold_times.append(t_cold)
        t_warm, warm = timed(functools.partial(ocp.solve, changed, theta0, guess=first, **keywords))
        warm_times.append(t_warm)
    rebuilt = len(cache) != built_before or warm.stats["build_time"] != first.stats["build_time"]
    return {"first": min(first_times), "cold": min(cold_times), "warm": min(warm_times),
            "it_first": first.stats["iterations"], "it_cold": cold.stats["iterations"],
            "it_warm": warm.stats["iterations"], "nlp_first": first.stats.get("solves", 1),
            "nlp_warm": warm.stats.get("solves", 1), "build": first.stats["build_time"],
            "rebuilt": rebuilt, "agree": warm.objective - cold.objective}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (best is shown)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else max(args.repeats, 1)

    # Load IPOPT's library once, outside the measurements.
    ocp.solve(double_well_problem(), [-0.6, 0.55], horizon=4.0)

    print(f"default mesh (40 x 5 Legendre); times in seconds, best of {repeats}; "
          "first = build + solve on a fresh problem")
    header = (f"{'case':30s} {'change':18s} {'first':>7s} {'(build)':>7s} {'cold':>7s} {'warm':>7s} "
              f"{'iter f/c/w':>11s} {'NLPs f/w':>9s} {'rebuilt':>7s} {'J_w - J_c':>10s} {'first/warm':>10s}")
    print(header)
    print("-" * len(header))
    for name, factory, theta0, keywords, changes in CASES:
        for label, change in changes.items():
            r = run_case(factory, theta0, keywords, change, repeats)
            iters = f"{r['it_first']}/{r['it_cold']}/{r['it_warm']}"
            nlps = f"{r['nlp_first']}/{r['nlp_warm']}"
            print(f"{name:30s} {label:18s} {r['first']:7.3f} {r['build']:7.3f} {r['cold']:7.3f} "
                  f"{r['warm']:7.3f} {iters:>11s} {nlps:>9s} {'yes' if r['rebuilt'] else 'no':>7s} "
                  f"{r['agree']:+10.1e} {r['first'] / r['warm']:9.1f}x", flush=True)
    print("\ncold = re-solve of the changed problem from the default guess; warm = the same with "
          "guess=first trajectory (states only: IPOPT's multipliers start at zero)")
    if args.quick:
        print("--quick: one run per measurement (timings noisier)")


if __name__ == "__main__":
    main()
