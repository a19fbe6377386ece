"""Benchmark: the rules on real networks, measured side by side in one run (issue 5 targets).

Tasks: digits-MLP (scikit-learn's 8×8 digits, 2 hidden layers of 128) and mnist1d-CNN (MNIST-1D
generated locally, a 3-conv 1-D CNN), minibatch 32, every rule with its registered defaults
(lossnav/training/rules.py), the same seeds, models and data order for every rule; runs are
interleaved rule by rule within each seed and use one thread each, so machine load hits
every rule alike. Printed per task and rule:

* final test accuracy, mean ± std over the seeds, and its gap to Adam (target: MPC within
  0.5 points of Adam at equal epochs);
* mean training wall time per epoch and its ratio to Adam's (target for MPC: ≤ 2×);
* AlgoPerf-style time to target: training time until the test accuracy first reaches a fixed
  target (digits 95 %, mnist1d 90 %; median over seeds, ∞ unless half the seeds reach it),
  relative to the fastest rule;
* ``--ablation``: the mpc rule without trust region (ρ = 1e9) and with K = 10;
* MPC plans, how many IPOPT solved (the trust region binds) and fallbacks (IPOPT failed, the
  closed-form path projected into the trust region was used).

Usage: ``python benchmarks/bench_train.py [--seeds 5] [--epochs-digits 20] [--epochs-mnist1d 30]
[--rules mpc,adam,...] [--tasks digits-mlp,mnist1d-cnn] [--save results.json]``. The results JSON
(per-epoch histories) feeds ``examples/fig2ef_training.py --results``.

``--tuning`` (issue 18) is the fair comparison instead, over digits-MLP, mnist1d-CNN and the
modular-addition transformer: every rule gets the same learning-rate budget (``--trials`` rates
on a log grid around its default, chosen on a validation split carved from the training set;
:func:`lossnav.training.compare.tune`), then the chosen rates run over ``--seeds`` seeds, and the
transformer once more at every rule's default rate. Printed per task: test accuracy mean ± std,
steps and training time to the target accuracy (median over seeds), per-step time and its
ratio to Adam's in the same run, MPC plans/IPOPT solves/fallbacks/host synchronisations, and
whether the goals hold (MPC per step ≤ 1.15× Adam on every task; time to target no worse than
the best tuned baseline on at least two tasks). ``--figures DIR`` draws the curves (mean ± std
bands). The default sizes take ≈ 10 min on an idle core (benchmarks/tuning.py).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tuning  # noqa: E402  (benchmarks/tuning.py: the --tuning comparison)

from lossnav.training.compare import TASKS, run_grid, summarize  # noqa: E402

RULES = ("adam", "mpc", "optimal_quadratic", "ballistic", "natural_gradient", "sgd")
TARGETS = {"digits-mlp": 95.0, "mnist1d-cnn": 90.0, "modular-transformer": 90.0}
PAPER_TASKS = ("digits-mlp", "mnist1d-cnn")


def register_ablations():
    """mpc variants: no trust region, and K = 10 (the registered mpc with one setting changed)."""
    from learning_rules import RecedingHorizon
    from lossnav.training import register_rule
    from lossnav.training.rules import MPC_OPTIONS

    def variant(**change):
        options = {**MPC_OPTIONS, **change}
        return lambda params, lr: RecedingHorizon(params, lr=lr, **options)
    register_rule("mpc_no_trust_region", variant(trust_radius=1e9), 5e-3)
    register_rule("mpc_K10", variant(replan_interval=10), 5e-3)
    return ["mpc_no_trust_region", "mpc_K10"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs-digits", type=int, default=20)
    parser.add_argument("--epochs-mnist1d", type=int, default=30)
    parser.add_argument("--rules", default=None,
                        help=f"default: {','.join(RULES)} ({','.join(tuning.RULES)} with --tuning)")
    parser.add_argument("--tasks", default=None,
                        help=f"default: {','.join(PAPER_TASKS)} ({','.join(TASKS)} with --tuning)")
    parser.add_argument("--save", metavar="FILE.json", help="write the per-epoch histories")
    parser.add_argument("--ablation", action="store_true",
                        help="add mpc without trust region (ρ = 1e9) and mpc re-planning every 10 steps")
    tuning.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.tuning:
        return tuning.main(args)
    rules = (args.rules or ",".join(RULES)).split(",")
    tasks = (args.tasks or ",".join(PAPER_TASKS)).split(",")
    if args.ablation:
        rules += register_ablations()
    epochs = {"digits-mlp": args.epochs_digits, "mnist1d-cnn": args.epochs_mnist1d}
    started = time.perf_counter()
    results = run_grid(tasks, rules, range(args.seeds), epochs, log=lambda line: print(line, flush=True))
    if args.save:
        Path(args.save).write_text(json.dumps({"epochs": epochs, "seeds": args.seeds, "results": results}))
    summary = summarize(results, TARGETS)
    print(f"\n{args.seeds} seeds, batch 32, epochs {epochs}; total {time.perf_counter() - started:.0f} s")
    for task in tasks:
        print(f"\n{task}: {epochs[task]} epochs, target accuracy {TARGETS[task]:.0f} %")
        print(f"{'rule':20s} {'test acc (%)':>14s} {'vs adam':>8s} {'s/epoch':>8s} {'×adam':>6s} "
              f"{'t→target (s)':>13s} {'×fastest':>8s} {'reached':>7s} {'fallbacks':>9s}")
        for rule in rules:
            row = summary[task][rule]
            target = row["time_to_target"]
            print(f"{rule:20s} {row['accuracy_mean']:7.2f} ± {row['accuracy_std']:4.2f} "
                  f"{row['gap_to_reference']:+8.2f} {row['epoch_time']:8.3f} {row['time_ratio']:6.2f} "
                  f"{target if math.isfinite(target) else math.inf:13.2f} {row['target_ratio']:8.2f} "
                  f"{row['reached']:>3d}/{row['runs']:<3d} {row['fallbacks']:9d}")
    if "mpc" in rules:
        for task in tasks:
            row = summary[task]["mpc"]
            print(f"MPC on {task}: {row['replans']} plans, {row['solves']} by IPOPT (trust region binding), "
                  f"{row['fallbacks']} fallbacks")
    if "mpc" in rules and "adam" in rules:
        print("\ntargets (MPC vs Adam): accuracy gap ≥ −0.5 points, epoch time ≤ 2×")
        for task in tasks:
            row = summary[task]["mpc"]
            print(f"  {task:12s} gap {row['gap_to_reference']:+.2f} "
                  f"({'met' if row['gap_to_reference'] >= -0.5 else 'NOT met'}), "
                  f"time ×{row['time_ratio']:.2f} ({'met' if row['time_ratio'] <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
