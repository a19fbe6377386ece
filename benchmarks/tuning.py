"""``bench_train.py --tuning``: every rule with the same learning-rate budget, three tasks, 5 seeds.

Protocol (issue 18). For each task and rule: ``--trials`` learning rates default × 10^t, t evenly
spaced over [−span, span] (:func:`lossnav.training.compare.lr_grid`), each trained once (seed 0)
on the training set minus a 20 % validation part and scored on that part (final accuracy, ties
broken by the mean over epochs); the test set is not seen. The chosen rate then runs over
``--seeds`` seeds on the full training set and is scored on the test set. The transformer also
runs at every rule's registered default (do the defaults carry over?). Rules are interleaved
within each trial and seed, so the machine's load hits them alike; per-step times are compared
within one task of one run.

Sizes. The default (``--size small``) takes about 10 minutes on an idle core (longer on a shared
machine): digits-MLP 10 epochs (batch 32), mnist1d-CNN 8 epochs (batch 64), and modular
addition with p = 31, 60 % of the pairs for training, a 1-layer transformer of width 64
(≈ 54 k parameters), batch 64, 330 epochs (≈ 2,970 steps: AdamW groks within them, at ≈ 1,450
steps; at 1,350 no rule did), 3 trials over ±½ decade.
``--size full`` is the configuration for a bigger machine: digits 20 and mnist1d 30 epochs
(batch 32), p = 97 with 30 % of the pairs, the 2-layer width-128 transformer (≈ 0.42 M
parameters), batch 512, 3,000 epochs (≈ 15,000 steps, the grokking regime of Power et al.
2022), 5 trials over ±1 decade. ``--size smoke`` runs the whole pipeline in a minute (no result).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from lossnav.training.compare import TaskSettings, run_grid, summarize, tune

RULES = ("mpc", "mpcw", "adam", "adamw", "sgd")
MPC_RULES = ("mpc", "mpcw")            # the goals are checked for each; the others are the baselines
TASKS = ("digits-mlp", "mnist1d-cnn", "modular-transformer")
TARGETS = {"digits-mlp": 95.0, "mnist1d-cnn": 80.0, "modular-transformer": 90.0}
SIZES = {
    "smoke": {
        "epochs": {"digits-mlp": 1, "mnist1d-cnn": 1, "modular-transformer": 2},
        "trials": 2, "span": 0.5,
        "settings": {
            "digits-mlp": TaskSettings(batch=128),
            "mnist1d-cnn": TaskSettings(batch=256),
            "modular-transformer": TaskSettings(data={"modulus": 11, "train_fraction": 0.6},
                                                model={"width": 16, "layers": 1, "hidden": 32}, batch=16),
        },
    },
    "small": {
        "epochs": {"digits-mlp": 10, "mnist1d-cnn": 8, "modular-transformer": 330},
        "trials": 3, "span": 0.5,
        "settings": {
            "digits-mlp": TaskSettings(batch=32),
            "mnist1d-cnn": TaskSettings(batch=64),
            "modular-transformer": TaskSettings(data={"modulus": 31, "train_fraction": 0.6},
                                                model={"width": 64, "layers": 1, "hidden": 256}, batch=64),
        },
    },
    "full": {
        "epochs": {"digits-mlp": 20, "mnist1d-cnn": 30, "modular-transformer": 3000},
        "trials": 5, "span": 1.0,
        "settings": {
            "digits-mlp": TaskSettings(batch=32),
            "mnist1d-cnn": TaskSettings(batch=32),
            "modular-transformer": TaskSettings(data={"modulus": 97, "train_fraction": 0.3}, batch=512),
        },
    },
}


def add_arguments(parser):
    group = parser.add_argument_group("--tuning (the fair comparison of issue 18)")
    group.add_argument("--tuning", action="store_true",
                       help="tune every rule's lr with the same budget, then 5 seeds")
    group.add_argument("--size", choices=tuple(SIZES), default="small",
                       help="smoke (pipeline check), small (≈ 10 min on an idle core) or full")
    group.add_argument("--trials", type=int, help="learning rates per rule (default: by --size)")
    group.add_argument("--figures", metavar="DIR", help="write the mean ± std curves as PNG files to DIR")
    group.add_argument("--device", default="cpu", help="torch device of every run (default: cpu)")
    group.add_argument("--epochs-modular", type=int, help="epochs of the transformer (default: by --size)")
    group.add_argument("--chosen-from", metavar="FILE.json",
                       help="skip the tuning: take the chosen learning rates from an earlier --save")
    group.add_argument("--no-defaults", action="store_true",
                       help="skip the transformer at the registered defaults")


def main(args) -> int:
    size = SIZES[args.size]
    rules = tuple((args.rules or ",".join(RULES)).split(","))
    tasks = tuple((args.tasks or ",".join(TASKS)).split(","))
    trials = args.trials or size["trials"]
    epochs, settings = dict(size["epochs"]), size["settings"]
    if args.epochs_modular:
        epochs["modular-transformer"] = args.epochs_modular
    started = time.perf_counter()

    def log(line):
        print(f"[{time.perf_counter() - started:6.0f} s] {line}", flush=True)
    if args.chosen_from:
        earlier = json.loads(Path(args.chosen_from).read_text())
        chosen, scores, trials = earlier["chosen"], earlier["scores"], earlier["trials"]
        print(f"learning rates chosen by the tuning saved in {args.chosen_from} ({trials} trials per rule)")
    else:
        chosen, scores = tune(tasks, rules, trials, epochs, settings=settings, span=size["span"], log=log,
                              device=args.device)
    print("\nchosen learning rates (validation split; final accuracy, mean over epochs):")
    for task in tasks:
        for rule in rules:
            cells = "  ".join(f"{lr:.3g}: {final:5.1f}/{mean:5.1f}" for lr, final, mean in scores[task][rule])
            print(f"  {task:20s} {rule:6s} → {chosen[task][rule]:.3g}   [{cells}]")
    results = run_grid(tasks, rules, range(args.seeds), epochs, lrs=chosen, settings=settings, log=log,
                       device=args.device)
    defaults = {}
    if "modular-transformer" in tasks and not args.no_defaults:     # the registered defaults, not retuned
        fresh = [rule for rule in rules if not math.isclose(chosen["modular-transformer"][rule],
                                                            _default(rule))]
        extra = run_grid(["modular-transformer"], fresh, range(args.seeds), epochs, settings=settings,
                         log=log, device=args.device) if fresh else {"modular-transformer": {}}
        defaults = {"modular-transformer": {rule: extra["modular-transformer"].get(rule)
                                            or results["modular-transformer"][rule] for rule in rules}}
    total = time.perf_counter() - started
    summary = summarize(results, TARGETS)
    default_summary = summarize(defaults, TARGETS) if defaults else {}
    print(f"\n{args.seeds} seeds, size {args.size}, {trials} lr trials per rule; total {total:.0f} s")
    for task in tasks:
        _table(f"{task} (tuned), {epochs[task]} epochs, target {TARGETS[task]:.0f} %", summary[task], rules)
    for task in default_summary:
        _table(f"{task} at the registered defaults (not retuned)", default_summary[task], rules)
    _goals(summary, tasks, rules)
    if args.save:
        Path(args.save).write_text(json.dumps({"size": args.size, "trials": trials, "epochs": epochs,
                                               "seeds": args.seeds, "targets": TARGETS, "chosen": chosen,
                                               "scores": scores, "results": results, "defaults": defaults,
                                               "total_seconds": total}))
    if args.figures:
        import tuning_figures
        for path in tuning_figures.draw(results, defaults, TARGETS, rules, args.figures):
            print(f"wrote {path}")
    return 0


def _default(rule):
    from lossnav.training import RULES as REGISTRY
    return REGISTRY[rule].default_lr


def _table(title, rows, rules):
    print(f"\n{title}")
    print(f"{'rule':7s} {'lr':>8s} {'test acc (%)':>14s} {'steps→tgt':>9s} {'t→tgt (s)':>9s} "
          f"{'×best':>6s} {'reached':>7s} {'ms/step':>8s} {'×adam':>6s} {'plans':>6s} {'IPOPT':>5s} "
          f"{'fallbk':>6s} {'syncs':>6s}")
    for rule in rules:
        row = rows[rule]
        diverged = f"  ({row['diverged']} diverged)" if row["diverged"] else ""
        print(f"{rule:7s} {row['lr']:8.3g} {row['accuracy_mean']:7.2f} ± {row['accuracy_std']:4.2f} "
              f"{row['steps_to_target']:9.0f} {row['time_to_target']:9.2f} {row['target_ratio']:6.2f} "
              f"{row['reached']:>3d}/{row['runs']:<3d} {1e3 * row['step_time']:8.2f} "
              f"{row['step_ratio']:6.2f} {row['replans']:6d} {row['solves']:5d} {row['fallbacks']:6d} "
              f"{row['host_syncs']:6d}{diverged}")


def _goals(summary, tasks, rules):
    if "adam" not in rules:
        return
    baselines = [r for r in rules if r not in MPC_RULES]
    print("\ngoals (issue 18): MPC per-step time ≤ 1.15× Adam's on every task; MPC time to target "
          f"no worse than the best tuned baseline ({', '.join(baselines)}) on ≥ 2 of the 3 tasks")
    for mpc in [r for r in MPC_RULES if r in rules]:
        wins = 0
        for task in tasks:
            rows = summary[task]
            ratio = rows[mpc]["step_ratio"]
            best = min((rows[r]["time_to_target"], r) for r in baselines)
            reached = rows[mpc]["time_to_target"]
            won = math.isfinite(reached) and reached <= best[0]
            wins += won
            print(f"  {mpc:5s} {task:20s} step ×{ratio:.2f} ({'met' if ratio <= 1.15 else 'NOT met'}); "
                  f"time to target {reached:.2f} s vs best baseline {best[1]} {best[0]:.2f} s "
                  f"({'no worse' if won else 'worse'})")
        met = all(summary[t][mpc]["step_ratio"] <= 1.15 for t in tasks)
        print(f"  {mpc}: per-step goal {'met' if met else 'NOT met'}; time-to-target goal "
              f"{'met' if wins >= 2 else 'NOT met'} ({wins} of {len(tasks)} tasks)")
