"""The reference path of a network's training loss: wall time, memory and accuracy against D (issue 25).

The loss is ``digits_mlp`` (problems.network: a tanh MLP 64 → hidden → 10 on scikit-learn's
digits, full batch, weight decay 1e-2, γ = η = k = 1), with ``hidden`` chosen for D ≈ 1,000,
5,000 and 20,000 parameters, solved matrix-free by ``ocp.solve`` on the finite horizon H = 10 and
on the infinite horizon (which, at these losses' λ_min, is the truncated window [0, W], γW = 24:
ocp.matrix_free.solve). Each solve runs in a fresh process, so its peak resident memory is its own;
the table prints it, net of the process after imports (torch, CasADi), and per parameter.

Columns: D, horizon, wall seconds, Newton and CG iterations, gradient and HVP evaluations (a batch
of N points counts N), the Euler–Lagrange residual and the doubled mesh's agreement of the
accepted path, peak memory (MB) and memory per parameter (kB). Goals (issue 25): D ≈ 5,000 on the
infinite horizon to an EL residual ≤ 1e-6 in ≤ 300 s on 2 cores; memory linear in D (no D × D
matrix: a dense Hessian at D = 20,000 would be 3.2 GB); D = 20,000 runs.

    python benchmarks/bench_network.py                      # the table (about half an hour)
    python benchmarks/bench_network.py --dims 1000 --horizons inf
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_DIM, GOAL_SECONDS, GOAL_EL = 5000, 300.0, 1e-6


def hidden_for(dim: int) -> int:
    """The hidden width whose D = 75·hidden + 10 is nearest ``dim``."""
    return max(1, round((dim - 10) / 75))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _case(hidden: int, horizon: float, queue) -> None:
    import torch

    import ocp
    from problems import get
    torch.set_num_threads(2)
    scenario = get("digits_mlp", hidden=hidden)
    problem = scenario.problem
    baseline = _rss_mb()
    start = time.perf_counter()
    try:
        path = ocp.solve(problem, scenario.theta0, horizon)
        stats, failure = path.stats, ""
    except ocp.SolveError as exc:
        last = exc.last_iterate
        stats, failure = (last.stats if hasattr(last, "stats") else {}), f"{exc.status}"
    seconds = time.perf_counter() - start
    queue.put({"dim": problem.dim, "horizon": horizon, "seconds": seconds, "failure": failure,
               "newton": stats.get("newton_iterations"), "cg": stats.get("cg_iterations"),
               "gradients": problem.loss.counts["gradient"], "hvps": problem.loss.counts["hvp"],
               "el": stats.get("euler_lagrange_error"), "agreement": stats.get("mesh_agreement"),
               "window": stats.get("window_end"), "memory": _rss_mb() - baseline})


def run(hidden: int, horizon: float) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_case, args=(hidden, horizon, queue))
    worker.start()
    row = queue.get()
    worker.join()
    return row


def _show(value, spec):
    return "—" if value is None else format(value, spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--horizons", type=float, nargs="+", default=[10.0, math.inf])
    args = parser.parse_args(argv)
    print(f"{'D':>6} {'horizon':>8} {'wall s':>8} {'newton':>6} {'cg':>5} {'grads':>7} {'HVPs':>8} "
          f"{'EL resid':>9} {'mesh agr':>9} {'MB':>7} {'kB/param':>8}  note", flush=True)
    rows = []
    for dim in args.dims:
        for horizon in args.horizons:
            row = run(hidden_for(dim), horizon)
            rows.append(row)
            note = row["failure"] or ("window [0, %g]" % row["window"] if row["window"] else "")
            print(f"{row['dim']:>6} {row['horizon']:>8g} {row['seconds']:>8.1f} "
                  f"{_show(row['newton'], '>6')} {_show(row['cg'], '>5')} {row['gradients']:>7} "
                  f"{row['hvps']:>8} {_show(row['el'], '>9.1e')} "
                  f"{_show(row['agreement'], '>9.1e')} {row['memory']:>7.0f} "
                  f"{1024 * row['memory'] / row['dim']:>8.1f}  {note}", flush=True)
    goal = [row for row in rows if math.isinf(row["horizon"]) and abs(row["dim"] - GOAL_DIM) < 500]
    for row in goal:
        met = not row["failure"] and row["el"] <= GOAL_EL and row["seconds"] <= GOAL_SECONDS
        print(f"goal D≈{GOAL_DIM} ∞ horizon, EL ≤ {GOAL_EL:g} in ≤ {GOAL_SECONDS:g} s: "
              f"{'met' if met else 'NOT met'} ({row['seconds']:.0f} s, EL {_show(row['el'], '.1e')}, "
              f"{GOAL_SECONDS / row['seconds']:.2f}× the budget's pace)")
    sized = sorted((row for row in rows if not row["failure"]), key=lambda row: row["dim"])
    if len(sized) >= 2 and sized[0]["memory"] > 0:
        growth = (sized[-1]["memory"] / sized[0]["memory"]) / (sized[-1]["dim"] / sized[0]["dim"])
        print(f"memory growth from D = {sized[0]['dim']} to {sized[-1]['dim']}: {growth:.2f}× linear "
              f"(1 = linear in D; a D × D matrix would be {sized[-1]['dim'] / sized[0]['dim']:.0f}× linear)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
