"""Benchmark: the infinite horizon on non-quadratic problems (issue 15, item 1).

Cases (the issue's measurements, and the top of its range γ ∈ [0, 100]): a 2-D logistic
regression, 8 points, ridge 0.05, η = k = 1, γ = 0.3, 2, 10 and 100; 10 tilted double wells
at γ = 20, η = 0.05 from the concave part of the right well (``crawl``); the same with the
metric G = [[2, .5], [.5, 1]] and 5 points, γ = 0.5 and 1. Data: x_i ~ N(0, I) (seed 0),
labels y_i = 1 if x_i·(1, −0.5) + 0.3 z_i > 0 (z ~ N(0, 1)); L(θ) = mean_i log(1 + e^{−s_i x_i·θ})
+ (0.05/2)|θ|², s_i = 2y_i − 1; θ0 = (3, −3).

Per case, side by side in one run:

* ``ocp.solve(problem, θ0)`` (infinite horizon): wall time, NLP solves (``stats['solves']``
  and ``stats['nlp_solves']``, by reason), how the tail was closed (``stats['tail']``);
* its path error against an independent reference, scipy's ``solve_bvp`` on the EL
  equations from θ0 to θ* (``lossnav.validation.bvp_reference``: no transcription, IPOPT,
  rest-point Newton or Riccati tail) over the whole approach (|θ − θ*| ≥ 1e-6 |θ0 − θ*|),
  max over the samples of |θ − θ_ref| / |θ0 − θ*| (target ≤ 1e-7);
* one fine finite-horizon NLP over [0, T_move] (``Mesh(80, 5)``, free end), T_move where
  the path is within 1e-3 |θ0 − θ*| of θ* (at most 27/γ, one NLP's visible discount): its
  wall time, and the ratio infinite / finite (target ≤ ~3).

``--quick``: the first two logistic cases only. Reports; never fails.
Usage: ``python benchmarks/bench_infinite.py [--quick]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below

import casadi  # noqa: E402
import numpy as np  # noqa: E402

import ocp  # noqa: E402
from lossnav.validation.bvp_reference import reference_path  # noqa: E402

THETA0 = np.array([3.0, -3.0])
RIDGE = 0.05


def logistic(points, gamma, metric=None):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((points, 2))
    y = (X @ np.array([1.0, -0.5]) + 0.3 * rng.standard_normal(points) > 0).astype(float)
    signs = 2 * y - 1

    def loss(theta, X, signs):
        margins = casadi.mtimes(X, theta) * signs
        mean_log_loss = casadi.sum1(casadi.log(1 + casadi.exp(-margins))) / X.shape[0]
        return mean_log_loss + RIDGE / 2 * casadi.sumsqr(theta)

    return ocp.DiscountedOCP(2, loss, gamma=gamma, eta=1.0, k=1.0, metric=metric,
                             constants={"X": X, "signs": signs}, name=f"logistic_{points}")


CASES = [("logistic, 8 points", 8, 0.3, None), ("logistic, 8 points", 8, 2.0, None),
         ("logistic, 8 points", 8, 10.0, None), ("logistic, 8 points", 8, 100.0, None),
         ("logistic + metric, 5 points", 5, 0.5, [[2.0, 0.5], [0.5, 1.0]]),
         ("logistic + metric, 5 points", 5, 1.0, [[2.0, 0.5], [0.5, 1.0]]),
         ("double wells, concave start", 10, 20.0, None)]


def crawl(dim, gamma):
    """Tilted double wells Σ(θ² − 1)² − 0.3θ + 0.02|θ|², η = 0.05, from the concave part of the
    right well (θ0_i ≈ 0.5): a slow overdamped crawl (≈ 300 time units) that Newton on the rest
    condition used to send across the barrier."""
    def loss(th):
        return casadi.sum1((th ** 2 - 1) ** 2 - 0.3 * th) + 0.02 * casadi.sumsqr(th)
    return ocp.DiscountedOCP(dim, loss, gamma=gamma, eta=0.05, k=1.0, name=f"crawl_{dim}")


CRAWL_THETA0 = 0.5 + 0.05 * np.random.default_rng(0).standard_normal(10)


def run_case(name, points, gamma, metric):
    if name.startswith("double wells"):
        build, theta0 = (lambda: crawl(points, gamma)), CRAWL_THETA0[:points]
    else:
        build, theta0 = (lambda: logistic(points, gamma, metric)), THETA0
    problem = build()
    start = time.perf_counter()
    path = ocp.solve(problem, theta0)
    seconds = time.perf_counter() - start
    rest = path.theta[-1]
    distance = np.abs(theta0 - rest).max()
    offsets = np.abs(path.theta - rest).max(axis=1)
    t_error = float(path.t[np.nonzero(offsets >= 1e-6 * distance)[0][-1]])     # the whole approach
    # the span in which the path visibly moves (1e-3 of the way left), within one NLP's
    # visible discount (longer finite horizons are solved in two parts, ocp.horizons.long_horizon)
    t_move = min(float(path.t[np.nonzero(offsets >= 1e-3 * distance)[0][-1]]), 27.0 / gamma)
    reference, _, _ = reference_path(problem, theta0)
    inside = path.t <= t_error
    error = np.abs(path.theta[inside] - reference(path.t[inside])).max() / distance
    fresh = build()                                 # nothing cached: build + solve, like the above
    start = time.perf_counter()
    finite = ocp.solve(fresh, theta0, horizon=t_move, mesh=ocp.Mesh(80, 5))
    finite_seconds = time.perf_counter() - start
    early = finite.t <= 0.5 * t_move                # away from its free end
    finite_error = np.abs(finite.theta[early] - reference(finite.t[early])).max() / distance
    print(f"{name:28s} γ={gamma:<4g} {seconds:7.2f} s  solves {path.stats['solves']:4d} "
          f"{path.stats.get('nlp_solves')} tail={path.stats.get('tail')}{_bridge(path.stats)}  "
          f"error {error:.1e}  | "
          f"one finite NLP (80x5) over T_move={t_move:.1f}: {finite_seconds:.2f} s (error on the first half "
          f"{finite_error:.1e})  "
          f"ratio {seconds / finite_seconds:.1f}", flush=True)


def _bridge(stats):
    """The current-value bridge's span, meshes and Newton iterations (``stats['current_value']``)."""
    bridge = stats.get("current_value")
    if not bridge:
        return ""
    estimate = bridge.get("error_estimate", float("nan"))
    return (f" bridge: span {bridge['spans'][-1]:.0f}, elements {bridge['elements']}, "
            f"{bridge['newton_iterations']} Newton, estimate {estimate:.0e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    ocp.solve(logistic(3, 1.0), THETA0, horizon=1.0)     # load IPOPT's library outside the measurements
    for case in CASES[:2] if args.quick else CASES:
        run_case(*case)


if __name__ == "__main__":
    main()
