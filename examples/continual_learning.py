"""Continual learning with the optimal-weight-uncertainty rule (issue 7; the paper's App. I:
raising weight variances after a task switch is the optimal form of weight resetting).

WeightUncertainty (learning_rules.WeightUncertainty, rule ``weight_uncertainty``) against
Adam, SGD and Adam whose state is reset at every task boundary (rule ``adam_reset``), each at
its registered default (lossnav/training/rules.py), on the digits task sequences of
lossnav/training/tasks.py: ``split`` (5 domain-incremental pairs {0,1}, …, {8,9}, shared
two-way head) and ``permuted`` (5 fixed pixel permutations, task 0 unpermuted). One MLP per
(sequence, seed, rule), seeds rule-interleaved. Figure: per task switch i, plasticity
(accuracy on task i after training on it) and forgetting (mean drop on the earlier tasks,
R[j][j] − R[i][j]), mean ± std over seeds, and WeightUncertainty's geometric-mean weight
variance per epoch (the App. I mechanism: does it rise after a switch?); a table of the means
over the switches, the final forgetting, the final average accuracy, and the variance just
before and after each switch.

Usage:
    python examples/continual_learning.py [--seeds 5] [--epochs 5]
                                          [--rules weight_uncertainty adam sgd adam_reset]
                                          [--sequences split permuted] [--data digits] [--model mlp]
                                          [--out continual_learning] [--save results.json]

A rule may carry its own lr as ``RULE@LR`` (e.g. ``sgd@0.3``, the learning-rate control in
docs/continual_learning.md). Writes OUT.png and OUT.pdf; ``--save`` keeps every run's metrics
(lossnav.training.continual.summary).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below
import torch  # noqa: E402

from lossnav import training  # noqa: E402
from lossnav.training.continual import summary, train_sequence  # noqa: E402
from lossnav.training.tasks import TASK_KINDS, make_tasks  # noqa: E402

RULES = ("weight_uncertainty", "adam", "sgd", "adam_reset")
COLOURS = {"weight_uncertainty": "tab:green", "adam": "tab:red", "sgd": "black", "adam_reset": "tab:orange",
           "belief_adam": "tab:blue"}


def parse_rule(spec):
    """"RULE" (its default lr) or "RULE@LR" → (RULE, lr or None); ValueError otherwise."""
    name, _, lr = spec.partition("@")
    if name not in training.RULES:
        raise ValueError(f"unknown rule {name!r}; valid: {', '.join(training.RULES)}")
    if not lr:
        return name, None
    try:
        value = float(lr)
    except ValueError:
        raise ValueError(f"the lr of {spec!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the lr of {spec!r} must be a finite number > 0")
    return name, value


def run(sequences, rules, seeds, epochs, batch=32, data_name="digits", model_name="mlp"):
    """{sequence: {rule: [metrics per seed]}} (lossnav.training.continual.summary dicts)."""
    data = training.load_data(data_name)
    results = {kind: {rule: [] for rule in rules} for kind in sequences}
    for kind in sequences:
        tasks = make_tasks(data, kind)
        for seed in seeds:
            for rule in rules:
                model = training.make_model(model_name, tasks[0].data, seed=seed)
                name, lr = parse_rule(rule)
                optimizer = training.make_optimizer(name, model.parameters(), lr)
                variances = []

                def record_variances(index, record, optimizer=optimizer, model=model, variances=variances):
                    if hasattr(optimizer, "variances"):       # WeightUncertainty: per epoch
                        per_tensor = optimizer.variances(list(model.parameters()))
                        v = torch.cat([x.reshape(-1) for x in per_tensor])
                        cap = optimizer.param_groups[0]["max_variance"]
                        variances.append({"task": index, "epoch": record["epoch"],
                                          "geometric_mean": float(v.log().mean().exp()),
                                          "at_cap": float((v >= cap).float().mean())})
                sequence = train_sequence(model, optimizer, tasks, epochs, seed=seed, batch=batch,
                                          progress=False, on_epoch=record_variances)
                config = {"data": data_name, "model": model_name, "rule": name, "seed": seed, "batch": batch,
                          "lr": training.RULES[name].default_lr if lr is None else lr, "tasks": kind,
                          "task_count": len(tasks),
                          "epochs_per_task": epochs}
                results[kind][rule].append({**summary(config, sequence, model), "variances": variances})
    return results


def band(runs, key):
    """(switch indices, mean, std) of the per-switch metric ``key`` (undefined entries dropped)."""
    values = np.array([[np.nan if v is None else v for v in run[key]] for run in runs], dtype=float)
    keep = ~np.isnan(values).any(axis=0)
    values = values[:, keep]
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
    return np.flatnonzero(keep), values.mean(axis=0), std


def setting(by_rule):
    run = next(iter(by_rule.values()))[0]
    return f"{run['data']}-{run['model']}"


def plot(results, stem):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kinds = list(results)
    figure, axes = plt.subplots(len(kinds), 3, figsize=(15, 3.6 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        for column, (key, label) in enumerate((("plasticity", "plasticity: accuracy on the new task (%)"),
                                               ("forgetting", "forgetting: mean drop on earlier tasks (%)"))):
            axis = axes[row, column]
            for rule, runs in results[kind].items():
                xs, mean, std = band(runs, key)
                # a RULE@LR not in COLOURS: matplotlib's next colour
                axis.plot(xs, mean, marker="o", color=COLOURS.get(rule), label=rule)
                axis.fill_between(xs, mean - std, mean + std, color=COLOURS.get(rule), alpha=0.2)
            axis.set_xlabel("after training on task")
            axis.set_ylabel(label, fontsize=8)
            axis.set_title(f"{setting(results[kind])}, {kind} tasks", fontsize=9)
            axis.set_xticks(range(len(next(iter(results[kind].values()))[0]["plasticity"])))
        axes[row, 0].legend(fontsize=7)
        axis = axes[row, 2]                 # WeightUncertainty's variances over the whole sequence
        for rule, runs in results[kind].items():
            if runs and runs[0]["variances"]:
                values = np.array([[v["geometric_mean"] for v in r["variances"]] for r in runs])
                epochs_total = np.arange(1, values.shape[1] + 1)
                std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
                axis.plot(epochs_total, values.mean(axis=0), color=COLOURS.get(rule),
                          label=f"{rule}: geometric mean v")
                axis.fill_between(epochs_total, values.mean(axis=0) - std, values.mean(axis=0) + std,
                                  color=COLOURS.get(rule), alpha=0.2)
                per_task = max(v["epoch"] for v in runs[0]["variances"])
                for t in range(1, values.shape[1] // per_task):
                    axis.axvline(t * per_task + 0.5, color="grey", linestyle="--", linewidth=0.8)
                axis.legend(fontsize=7)
        axis.set_xlabel("epoch (whole sequence; task switches dashed)")
        axis.set_ylabel("weight variance v", fontsize=8)
        axis.set_title(f"{setting(results[kind])}, {kind} tasks: WeightUncertainty's variances", fontsize=9)
    figure.tight_layout()
    for suffix in (".png", ".pdf"):
        figure.savefig(f"{stem}{suffix}", dpi=150)
    plt.close(figure)


def switch_response(runs):
    """Per task t: WeightUncertainty's geometric-mean variance and fraction at the cap after the
    last epoch of t, and after the first epoch of t + 1 (means over seeds)."""
    def at(task, epoch, key):
        return statistics.fmean(next(v[key] for v in r["variances"]
                                     if (v["task"], v["epoch"]) == (task, epoch))
                                for r in runs)
    tasks = max(v["task"] for v in runs[0]["variances"]) + 1
    epochs = max(v["epoch"] for v in runs[0]["variances"])
    cells = []
    for t in range(tasks):
        cell = f"t{t}: {at(t, epochs, 'geometric_mean'):.3f} ({at(t, epochs, 'at_cap'):.2f})"
        if t + 1 < tasks:
            cell += f" -> {at(t + 1, 1, 'geometric_mean'):.3f} ({at(t + 1, 1, 'at_cap'):.2f})"
        cells.append(cell)
    return cells


def mean_std(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(results):
    """Rows per (sequence, rule): plasticity averaged over the switches i ≥ 1, final forgetting,
    final average accuracy; mean ± std over seeds."""
    lines = ["sequence  rule                plasticity (i≥1)   final forgetting   final avg accuracy",
             "--------  ------------------  -----------------  -----------------  ------------------"]
    for kind, by_rule in results.items():
        for rule, runs in by_rule.items():
            cells = [mean_std([statistics.fmean(r["plasticity"][1:]) for r in runs]),
                     mean_std([r["final_forgetting"] for r in runs]),
                     mean_std([r["final_average_accuracy"] for r in runs])]
            lines.append(f"{kind:8s}  {rule:18s}  "
                         + "  ".join(f"{m:7.2f} ± {s:5.2f}    " for m, s in cells))
    for kind, by_rule in results.items():
        for rule, runs in by_rule.items():
            if runs[0]["variances"]:
                lines.append(f"{kind} {rule}: geometric-mean variance (fraction at the cap) at the end of "
                             "each task -> after the next task's first epoch:")
                lines.append("    " + "  ".join(switch_response(runs)))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per task")
    parser.add_argument("--rules", nargs="+", default=list(RULES))
    parser.add_argument("--sequences", nargs="+", default=["split", "permuted"])
    parser.add_argument("--data", default="digits", help="digits (default) or mnist1d")
    parser.add_argument("--model", default="mlp", help="mlp (default) or cnn")
    parser.add_argument("--out", default="continual_learning", help="figure stem (writes .png and .pdf)")
    parser.add_argument("--save", help="write every run's metrics as JSON")
    args = parser.parse_args(argv)
    for rule in args.rules:
        try:
            parse_rule(rule)
        except ValueError as exc:
            parser.error(str(exc))
    torch.set_num_threads(1)
    started = time.perf_counter()
    for kind in args.sequences:
        if kind not in TASK_KINDS:
            parser.error(f"unknown task sequence {kind!r}; valid: {', '.join(TASK_KINDS)}")
    for name, registry in ((args.data, training.DATASETS), (args.model, training.MODELS)):
        if name not in registry:
            parser.error(f"unknown name {name!r}; valid: {', '.join(registry)}")
    results = run(args.sequences, args.rules, range(args.seeds), args.epochs, data_name=args.data,
                  model_name=args.model)
    elapsed = time.perf_counter() - started
    plot(results, args.out)
    if args.save:
        Path(args.save).write_text(json.dumps(results) + "\n")
    print(f"{args.data}-{args.model}, 5 tasks × {args.epochs} epochs, {args.seeds} seeds, batch 32, "
          f"rule defaults; {elapsed:.0f} s")
    print(table(results))
    print(f"figure: {args.out}.png, {args.out}.pdf")


if __name__ == "__main__":
    main()
