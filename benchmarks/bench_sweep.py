"""Benchmark: one sweep run serially, on 2 local worker processes and on a 2-worker Dask
LocalCluster, side by side in one run (issue 17 targets).

The sweep: the validation cases of two scenarios (``lossnav validate``'s cases, one task a
case: :func:`lossnav.validation.cases.check`, rules included) and a training grid
(``lossnav train --data digits --model mlp`` over rules × seeds, one task a run, through the
command's own entry as ``lossnav sweep`` runs it). The same task list goes through
:func:`lossnav.sweep.run_sweep` on each backend; printed:

* wall time per backend and the speed-up over serial (goal ≥ 1.7× with 2 workers on a
  2-core machine). Both parallel backends are started and warmed (workers up, modules
  imported) before the clock starts; their start-up is printed apart;
* whether the three tables are equal (every column but the timings);
* the per-task overhead of the Dask path (goal ≤ 50 ms): ``--noop`` tasks that do nothing
  through the same path (submit, execute in the worker, result back), worker-time per task
  = wall × workers / tasks.

Other processes on a shared machine take cores from the parallel runs: before each one the
benchmark measures what the machine offers 2 processes at that moment (2 CPU-bound burns at
once against one alone; 2.0 on an idle 2-core machine) and prints the speed-up beside it,
with ``uptime`` before and after. "Serially" is one worker process: every run's workers fork from
the one fork server that imported the code once, so the three tables come from the same code
even when a shared working tree changes during the run.

Usage: ``python benchmarks/bench_sweep.py [--scenarios quadratic,rotation] [--draws 0]
[--rules sgd,adam] [--seeds 3] [--epochs 10] [--noop 200]``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from lossnav import sweep
from lossnav.cli.sweep import run_command
from lossnav.validation import cases

PRELOAD = ["lossnav.cli", "lossnav.validation.cases", "lossnav.training", "lossnav.training.loop"]
TIMINGS = ("wall_time", "worker", "seconds", "mean_epoch_time", "epochs", "max_seconds")


def run_any(payload):
    """One task of the mixed sweep: ("case", Case) → the case's figures; ("argv", argv) →
    the command's JSON."""
    kind, value = payload
    if kind == "case":
        result = cases.check(value)
        return {"passed": result.passed, "message": result.message, **result.figures,
                "rules": len(result.rules)}
    return run_command(value)


def noop(payload):
    return None


def burn(seconds):
    """CPU-bound Python work for about ``seconds`` on an idle core (the calibration)."""
    total, end = 0, time.process_time() + seconds
    while time.process_time() < end:
        total += sum(range(1000))
    return total


def available_parallelism(workers: int, seconds: float = 1.0) -> float:
    """What the machine gives ``workers`` processes right now: workers × (wall of one burn
    alone) / (wall of ``workers`` burns at once). 2.0 on an idle 2-core machine; other jobs
    lower it, and no sweep can beat it."""
    context = sweep.backends._pool_context()
    with context.Pool(workers) as pool:
        pool.map(burn, [0.01] * workers)                    # workers up
        start = time.perf_counter()
        pool.map(burn, [seconds])
        alone = time.perf_counter() - start
        start = time.perf_counter()
        pool.map(burn, [seconds] * workers, chunksize=1)
        together = time.perf_counter() - start
    return workers * alone / together


def build_tasks(args) -> list:
    tasks = []
    for name in args.scenarios.split(","):
        for case in cases.cases(name, draws=args.draws, seed=0):
            tasks.append(sweep.make_task(len(tasks), ("case", case), {"case": case.label, "problem": name},
                                         {"problem": name, "case": case.label}))
    for rule in args.rules.split(","):
        for seed in range(args.seeds):
            argv = ["train", "--data", "digits", "--model", "mlp", "--rule", rule,
                    "--epochs", str(args.epochs), "--seed", str(seed), "--json"]
            tasks.append(sweep.make_task(len(tasks), ("argv", argv), {"argv": argv},
                                         {"problem": f"train {rule}", "case": f"seed {seed}"}))
    return tasks


def timed_sweep(tasks, backend, directory):
    start = time.perf_counter()
    table, counts = sweep.run_sweep(tasks, run_any, backend, directory, progress=False)
    return time.perf_counter() - start, table, counts


def comparable(table):
    keep = [c for c in table.columns if not any(c == t or c.endswith(t) or "time" in c for t in TIMINGS)]
    return table[keep].reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="quadratic,rotation")
    parser.add_argument("--draws", type=int, default=0)
    parser.add_argument("--rules", default="sgd,adam")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--noop", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    code = sweep.code_version()
    tasks = build_tasks(args)
    print(f"{len(tasks)} tasks: {sum(t.payload[0] == 'case' for t in tasks)} validation cases of "
          f"{args.scenarios}, {sum(t.payload[0] == 'argv' for t in tasks)} training runs "
          f"(digits-mlp, rules {args.rules}, {args.seeds} seeds, {args.epochs} epochs)")
    warm = [sweep.make_task(i, None, f"warm {i}") for i in range(4 * args.workers)]
    out = tempfile.mkdtemp(prefix="bench_sweep_")
    walls, tables, offered = {}, {}, {}
    # serially: one worker process, forked, like every worker below, from the one fork server
    # that imported the code once (PRELOAD), so all three runs use the same code even while a
    # shared working tree changes under them
    with sweep.LocalPool(1, preload=PRELOAD) as serial:
        list(serial.run(noop, warm[:1]))
        walls["serial"], tables["serial"], counts = timed_sweep(tasks, serial, os.path.join(out, "serial"))
    print(f"serial (1 process)     {walls['serial']:7.1f} s   {counts}")
    preload = PRELOAD

    offered["pool"] = available_parallelism(args.workers)
    start = time.perf_counter()
    with sweep.LocalPool(args.workers, preload=preload) as pool:
        list(pool.run(noop, warm))
        startup = time.perf_counter() - start
        walls["pool"], tables["pool"], counts = timed_sweep(tasks, pool, os.path.join(out, "pool"))
    print(f"local pool ({args.workers})         {walls['pool']:7.1f} s   "
          f"speed-up {walls['serial'] / walls['pool']:.2f}x "
          f"(machine offered {offered['pool']:.2f}x; start-up {startup:.1f} s apart)   {counts}")

    offered["dask"] = available_parallelism(args.workers)
    start = time.perf_counter()
    with sweep.local_cluster(args.workers, preload=preload) as cluster, sweep.DaskCluster(cluster) as dask:
        list(dask.run(noop, warm))
        startup = time.perf_counter() - start
        walls["dask"], tables["dask"], counts = timed_sweep(tasks, dask, os.path.join(out, "dask"))
        print(f"Dask LocalCluster ({args.workers})  {walls['dask']:7.1f} s   speed-up "
              f"{walls['serial'] / walls['dask']:.2f}x (machine offered {offered['dask']:.2f}x; "
              f"start-up {startup:.1f} s apart)   {counts}")
        noops = [sweep.make_task(i, None, f"noop {i}") for i in range(args.noop)]
        start = time.perf_counter()
        list(dask.run(noop, noops))
        noop_wall = time.perf_counter() - start
    per_task = noop_wall * args.workers / args.noop
    print(f"Dask per-task overhead: {1e3 * per_task:.1f} ms of worker time ({args.noop} no-op tasks in "
          f"{noop_wall:.2f} s on {args.workers} workers; goal ≤ 50 ms)")
    equal = all(comparable(tables["serial"]).equals(comparable(tables[name])) for name in ("pool", "dask"))
    sweep.code_version.cache_clear()
    changed = sweep.code_version() != code
    print(f"tables equal (timings aside): {equal}" + (" (the source changed during the run; the workers "
          "all forked from the fork server that imported it once)" if changed else ""))
    best = max(walls["serial"] / walls["pool"], walls["serial"] / walls["dask"])
    efficiency = {kind: walls["serial"] / walls[kind] / offered[kind] for kind in ("pool", "dask")}
    print(f"goal speed-up ≥ 1.7x with {args.workers} workers: {'met' if best >= 1.7 else 'NOT met'} "
          f"(best {best:.2f}x; parallel efficiency against what the machine offered: pool "
          f"{efficiency['pool']:.2f}, Dask {efficiency['dask']:.2f}); "
          f"goal Dask overhead ≤ 50 ms: {'met' if per_task <= 0.05 else 'NOT met'}")
    print("uptime after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"tables: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
