"""Benchmark (b): build and solve time of ``ocp.solve`` against the dimension D.

Two families, finite horizon T = 4 with a free end, γ = 0.1, η = k = 1:

* **separable, non-quadratic**: L(θ) = Σ_i (θ_i² − 1)² − 0.3 θ_i, a sum of tilted double
  wells, D ∈ {10, 100, 1000}. Start θ0_i = 0.5 + 0.05·z_i (z standard normal, seed 0),
  inside the basin of the global minimum θ_i ≈ 1.0356: from there the optimal path is
  unique (from the left basin, e.g. θ0 = −0.5, the problem has two local optima, staying
  or crossing, and IPOPT's answer depends on the initial guess, which would make the
  timing depend on which one it finds). The table checks that every coordinate ends in
  the global well.
* **densely coupled**: L(θ) = ½ θᵀAθ + 0.1 Σ_i θ_i⁴ with a dense SPD A (random
  eigenvectors, eigenvalues log-spaced in [0.1, 10]) passed as a problem constant
  (``constants={"A": A}``, an NLP parameter), D ∈ {10, 50, 100} (``--quick``: {10, 25, 50}).
  Start θ0_i = 1 + 0.1·z_i. Convex, so the path is unique.

Per D: the NLP size, IPOPT iterations, the transcription build time
(``traj.stats['build_time']``: CasADi Functions and ``nlpsol``), the IPOPT time
(``traj.stats['solve_time']``) and the wall time of constructing the problem and calling
``ocp.solve`` once on it (so build + solve + everything else); each D runs on a fresh
problem, so nothing is cached. Between consecutive D the growth exponent (log-log slope)
of each time is printed: 1 is linear in D.

Mesh (printed above each table): the separable family runs on ``Mesh(intervals=20,
degree=4)`` and on the engine's default mesh (40 × 5); the dense family on Mesh(20, 4)
only. ``--quick`` uses Mesh(20, 4) only; ``--mesh small|default|both`` overrides.

The same separable family on the **infinite horizon** (γ = 0.5, ``ocp.solve`` default:
first mapped window, receding windows, LQ tail), vectorised (``casadi.sum1``) and written as
a plain Python sum over the coordinates, D ∈ {10, 100, 1000} ({10, 100} with ``--quick``):
the case issue 15 measured (plain sum: D = 100 16 s, D = 1000 1,043 s before).

Target (issue 2, "Benchmarks" (b); issue 15 item 2 on the infinite horizon): D = 1000
separable built and solved in under 10 s on this 2-core machine, growth near-linear in D. This
script reports; it never fails (benchmarks do not gate CI).

Usage: ``python benchmarks/bench_scaling.py [--quick] [--mesh small|default|both]
[--ipopt KEY=VALUE ...]`` (IPOPT options passed to ``ocp.solve``, values as JSON).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below

import casadi  # noqa: E402
import numpy as np  # noqa: E402

import ocp  # noqa: E402

GAMMA, HORIZON, TILT = 0.1, 4.0, 0.3
INFINITE_GAMMA = 0.5
SMALL_MESH = ocp.Mesh(intervals=20, degree=4)


def separable(D, rng):
    problem = ocp.DiscountedOCP(dim=D, loss=lambda th: casadi.sum1((th ** 2 - 1) ** 2 - TILT * th),
                                gamma=GAMMA, name=f"double_wells_{D}")
    theta0 = 0.5 + 0.05 * rng.standard_normal(D)
    return problem, theta0


def separable_plain_sum(D, rng):
    """The same separable loss written as a user would first write it: a Python sum over the
    coordinates (an SX expression with D terms per collocation point)."""
    problem = ocp.DiscountedOCP(dim=D,
                                loss=lambda th: sum((th[i] ** 2 - 1) ** 2 - TILT * th[i] for i in range(D)),
                                gamma=GAMMA, name=f"double_wells_sum_{D}")
    theta0 = 0.5 + 0.05 * rng.standard_normal(D)
    return problem, theta0


def infinite(family, gamma=INFINITE_GAMMA):
    """``family`` on the infinite horizon at discount ``gamma`` (issue 15: the case users meet)."""
    def build(D, rng):
        problem, theta0 = family(D, rng)
        return problem.replace(gamma=gamma), theta0
    build.horizon = math.inf
    return build


def dense(D, rng):
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    A = (Q * np.logspace(-1, 1, D)) @ Q.T
    A = (A + A.T) / 2

    def loss(th, A):
        return 0.5 * casadi.mtimes(th.T, casadi.mtimes(A, th)) + 0.1 * casadi.sum1(th ** 4)

    problem = ocp.DiscountedOCP(dim=D, loss=loss, gamma=GAMMA, constants={"A": A},
                                name=f"dense_{D}")
    theta0 = 1.0 + 0.1 * rng.standard_normal(D)
    return problem, theta0


def global_well():
    """The global minimiser of (θ² − 1)² − TILT·θ (largest root of 4θ³ − 4θ − TILT)."""
    return max(np.roots([4.0, 0.0, -4.0, -TILT]).real)


def measure(family, D, mesh, ipopt):
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    problem, theta0 = family(D, rng)
    traj = ocp.solve(problem, theta0, horizon=getattr(family, "horizon", HORIZON), mesh=mesh, ipopt=ipopt)
    wall = time.perf_counter() - t0
    n_var = mesh.intervals * D * (2 * mesh.degree + 1) + D
    return {"D": D, "n_var": n_var, "iterations": traj.stats["iterations"],
            "solves": traj.stats.get("solves", 1),
            "build": traj.stats["build_time"], "solve": traj.stats["solve_time"], "wall": wall,
            "objective": traj.objective, "end": traj.theta[-1]}


def slope(a, b, key):
    if a[key] <= 0 or b[key] <= 0:
        return float("nan")
    return math.log(b[key] / a[key]) / math.log(b["D"] / a["D"])


def table(title, family, dims, mesh, ipopt, check=None):
    print(f"{title}; Mesh(intervals={mesh.intervals}, degree={mesh.degree}, scheme={mesh.scheme!r})")
    print(f"{'D':>6s} {'NLP vars':>9s} {'iter':>5s} {'build [s]':>10s} {'IPOPT [s]':>10s} "
          f"{'wall [s]':>9s} {'other [s]':>9s}  {'slope build/IPOPT/wall':>24s}  check")
    rows = []
    for D in dims:
        row = measure(family, D, mesh, ipopt)
        grow = ""
        if rows:
            prev = rows[-1]
            grow = " / ".join(f"{slope(prev, row, k):4.2f}" for k in ("build", "solve", "wall"))
        other = row["wall"] - row["build"] - row["solve"]
        note = check(row) if check else f"J = {row['objective']:.6g}"
        note += f"; NLP solves {row['solves']}"
        print(f"{D:6d} {row['n_var']:9d} {row['iterations']:5d} {row['build']:10.3f} "
              f"{row['solve']:10.3f} {row['wall']:9.3f} {other:9.3f}  {grow:>24s}  {note}", flush=True)
        rows.append(row)
    if len(rows) > 1:
        print(f"{'':6s} overall slope {rows[0]['D']}->{rows[-1]['D']}: build "
              f"{slope(rows[0], rows[-1], 'build'):.2f}, IPOPT {slope(rows[0], rows[-1], 'solve'):.2f}, "
              f"wall {slope(rows[0], rows[-1], 'wall'):.2f}")
    print()
    return rows


def parse_ipopt(items):
    options = {}
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="dense D in {10, 25, 50}")
    parser.add_argument("--mesh", choices=("small", "default", "both"), default=None,
                        help="small = Mesh(20, 4); default = the engine's 40 x 5; both (separable "
                             "family on both meshes). Default: both, or small with --quick")
    parser.add_argument("--ipopt", nargs="*", metavar="KEY=VALUE", help="IPOPT options for ocp.solve")
    args = parser.parse_args(argv)
    ipopt = parse_ipopt(args.ipopt)
    args.mesh = args.mesh or ("small" if args.quick else "both")

    print(f"cores: {os.cpu_count()}, casadi {casadi.__version__}, gamma = {GAMMA}, T = {HORIZON} "
          f"(free end); IPOPT options: {ipopt or 'engine defaults'}")
    print("columns: build = traj.stats['build_time'], IPOPT = traj.stats['solve_time'], wall = problem "
          "construction + ocp.solve; other = wall - build - IPOPT; "
          "slope = log-log growth vs the previous D\n")
    # Load IPOPT's library once, outside the measurements.
    ocp.solve(*separable(2, np.random.default_rng(0)), horizon=HORIZON, mesh=SMALL_MESH)

    well = global_well()

    def in_global_well(row):
        ok = bool(np.all(np.abs(row["end"] - well) < 0.05))
        return f"end in global well: {'yes' if ok else 'NO'}"

    meshes = {"small": [SMALL_MESH], "default": [ocp.Mesh()], "both": [SMALL_MESH, ocp.Mesh()]}[args.mesh]
    separable_rows = None
    for mesh in meshes:
        rows = table("separable double wells, sum_i (theta_i^2-1)^2 - 0.3 theta_i", separable,
                     (10, 100, 1000), mesh, ipopt, in_global_well)
        separable_rows = separable_rows or rows
    infinite_dims = (10, 100) if args.quick else (10, 100, 1000)
    for label, family in (("vectorised", separable), ("plain Python sum", separable_plain_sum)):
        table(f"infinite horizon, gamma = {INFINITE_GAMMA}, separable double wells, {label}",
              infinite(family), infinite_dims, meshes[0], ipopt, in_global_well)
    dense_dims = (10, 25, 50) if args.quick else (10, 50, 100)
    table("dense coupling, theta^T A theta / 2 + 0.1 sum theta_i^4 (A dense SPD, a constant)", dense,
          dense_dims, meshes[0], ipopt)
    big = separable_rows[-1]
    mesh = meshes[0]
    print(f"target: D = 1000 separable built and solved < 10 s (Mesh {mesh.intervals} x {mesh.degree}): "
          f"build + IPOPT = {big['build'] + big['solve']:.2f} s, wall = {big['wall']:.2f} s")
    if args.quick:
        print("--quick: dense D in {10, 25, 50} instead of {10, 50, 100}")


if __name__ == "__main__":
    main()
