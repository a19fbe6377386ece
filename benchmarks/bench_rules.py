"""Per-step wall time of each learning rule relative to torch.optim.Adam.

A full training step (closure: forward, loss, backward; then the update) on an MLP
64-128-128-10 with a batch of 128, float32, CPU. All optimizers run side by side in one
process: rounds of ``--steps`` steps per optimizer, interleaved, after a warm-up; the
figure per optimizer is the median step time over all rounds, and its ratio to Adam's.

Targets (issue 4): Ballistic and diagonal NaturalGradient ≤ 1.3× Adam; OptimalQuadratic
with a Hutchinson diagonal refreshed every step ≤ 3× Adam. The refresh-interval table
shows the trade-off: a Hessian-vector product (a second backward through a gradient with
graph) every step, or every N steps at the price of a staler curvature.

    .venv/bin/python benchmarks/bench_rules.py [--steps 50] [--rounds 7] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below

from learning_rules import Ballistic, NaturalGradient, OptimalQuadratic  # noqa: E402

TARGETS = {"Ballistic": 1.3, "Ballistic (paper)": 1.3, "NaturalGradient (fisher)": 1.3,
           "OptimalQuadratic (hutchinson, every step)": 3.0}


def model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    inputs, targets = torch.randn(128, 64), torch.randint(0, 10, (128,))
    return model, inputs, targets


def candidates(refresh_intervals):
    rules = {
        "Adam": lambda p: torch.optim.Adam(p, lr=1e-3),
        "SGD": lambda p: torch.optim.SGD(p, lr=1e-2),
        "Ballistic": lambda p: Ballistic(p, lr=1e-3),
        "Ballistic (paper)": lambda p: Ballistic.paper(p, lr=1e-3),
        "NaturalGradient (fisher)": lambda p: NaturalGradient(p, lr=1e-3, metric="fisher", damping=1e-4),
    }
    for interval in refresh_intervals:
        label = "every step" if interval == 1 else f"every {interval} steps"
        rules[f"OptimalQuadratic (hutchinson, {label})"] = (
            lambda p, n=interval: OptimalQuadratic(p, lr=1e-2, gamma=1.0, refresh_interval=n, damping=1e-4))
    return rules


def timed_steps(optimizer, closure, steps, wall, cpu):
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.thread_time()
        optimizer.step(closure)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per optimizer per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per optimizer first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--refresh", type=int, nargs="+", default=[1, 2, 5, 10, 50])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    runs = {}
    for name, make in candidates(args.refresh).items():
        model, inputs, targets = model_and_data()
        optimizer = make(model.parameters())

        def closure(model=model, inputs=inputs, targets=targets, optimizer=optimizer):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            return loss
        timed_steps(optimizer, closure, args.warmup, [], [])
        runs[name] = (optimizer, closure, [], [])
    for _ in range(args.rounds):
        for optimizer, closure, wall, cpu in runs.values():
            timed_steps(optimizer, closure, args.steps, wall, cpu)

    wall = {name: statistics.median(run[2]) for name, run in runs.items()}
    cpu = {name: statistics.median(run[3]) for name, run in runs.items()}
    print(f"MLP 64-128-128-10, batch 128, float32, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"median of {args.rounds} interleaved rounds × {args.steps} steps after {args.warmup} warm-up; "
          "wall clock and this thread's CPU time")
    print(f"{'optimizer':44s} {'wall ms':>8s} {'× Adam':>7s} {'CPU ms':>8s} {'× Adam':>7s}  target")
    for name in runs:
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"≤ {target:.1f} " + ("ok" if wall[name] / wall["Adam"] <= target
                                                                    else "MISSED"))
        print(f"{name:44s} {1e3 * wall[name]:8.3f} {wall[name] / wall['Adam']:7.2f} "
              f"{1e3 * cpu[name]:8.3f} {cpu[name] / cpu['Adam']:7.2f}  {verdict}")
    print("\nrefresh-interval trade-off (OptimalQuadratic, Hutchinson diagonal): one HVP every N steps;"
          " mean over all steps (refresh steps included)")
    adam_mean = statistics.mean(runs["Adam"][2])
    for interval in args.refresh:
        label = "every step" if interval == 1 else f"every {interval} steps"
        mean = statistics.mean(runs[f"OptimalQuadratic (hutchinson, {label})"][2])
        print(f"  N = {interval:3d}: {1e3 * mean:7.3f} ms/step = {mean / adam_mean:5.2f}× Adam "
              f"(curvature up to {interval - 1} steps old)")


if __name__ == "__main__":
    main()
