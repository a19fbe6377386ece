"""The paper's Fig. 2e–f comparison on small data: SGD, Adam and Ballistic (App. B), plus our
MPC (learning_rules.RecedingHorizon) and OptimalQuadratic rules.

The paper trains an MLP on MNIST (Fig. 2e) and a CNN on CIFAR-10 (Fig. 2f); here an MLP on
scikit-learn's 8×8 digits and a 1-D CNN on MNIST-1D (generated locally), so that 5 seeds of
every rule run on a CPU in minutes. Each rule uses its registered defaults
(lossnav/training/rules.py); the figure shows the test accuracy per epoch, mean ± std over the seeds
(shaded), and the training loss on a log axis, geometric mean ×/÷ geometric std.

Usage:
    python examples/fig2ef_training.py [--seeds 5] [--epochs-digits 20] [--epochs-mnist1d 30]
                                       [--out fig2ef.png] [--results bench.json]

``--results`` reuses the histories saved by ``benchmarks/bench_train.py --save`` instead of
training again.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below
from lossnav.training.compare import run_grid  # noqa: E402

TASKS = ("digits-mlp", "mnist1d-cnn")     # the paper's two settings (the transformer: bench_train --tuning)

RULES = ("sgd", "adam", "ballistic", "mpc", "optimal_quadratic")
COLOURS = {"sgd": "black", "adam": "tab:red", "ballistic": "tab:blue", "mpc": "tab:green",
           "optimal_quadratic": "tab:purple"}


def curves(histories, key, geometric=False):
    """(centre, low, high) per epoch: mean ± std, or for a loss on a log axis the geometric
    mean ×/÷ the geometric std (an arithmetic band would cross zero)."""
    values = np.array([[record[key] for record in history["epochs"]] for history in histories])
    if geometric:
        values = np.log(values)
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
    low, high = mean - std, mean + std
    return (np.exp(mean), np.exp(low), np.exp(high)) if geometric else (mean, low, high)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = list(results)
    figure, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.6 * len(tasks)), squeeze=False)
    panels = (("train_loss", "training loss"), ("test_accuracy", "test accuracy (%)"))
    for row, task in enumerate(tasks):
        for column, (key, label) in enumerate(panels):
            axis = axes[row, column]
            for rule, histories in results[task].items():
                centre, low, high = curves(histories, key, geometric=(key == "train_loss"))
                epochs = np.arange(1, len(centre) + 1)
                axis.plot(epochs, centre, color=COLOURS.get(rule), label=rule)
                axis.fill_between(epochs, low, high, color=COLOURS.get(rule), alpha=0.2)
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            spread = "geometric mean ×/÷ std" if key == "train_loss" else "mean ± std"
            axis.set_title(f"{task}: {label} ({spread}, {len(next(iter(results[task].values())))} seeds)",
                           fontsize=9)
            if key == "train_loss":
                axis.set_yscale("log")
            else:
                axis.set_ylim(max(0, axis.get_ylim()[0]), 100)
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs-digits", type=int, default=20)
    parser.add_argument("--epochs-mnist1d", type=int, default=30)
    parser.add_argument("--out", default="fig2ef.png")
    parser.add_argument("--results", metavar="FILE.json",
                        help="histories from benchmarks/bench_train.py --save")
    args = parser.parse_args(argv)
    if args.results:
        saved = json.loads(Path(args.results).read_text())["results"]
        results = {task: {rule: saved[task][rule] for rule in RULES if rule in saved[task]} for task in saved}
    else:
        epochs = {"digits-mlp": args.epochs_digits, "mnist1d-cnn": args.epochs_mnist1d}
        results = run_grid(list(TASKS), RULES, range(args.seeds), epochs,
                           log=lambda line: print(line, flush=True))
    plot(results, args.out)
    for task, by_rule in results.items():
        print(f"\n{task}: final test accuracy (%), mean ± std over seeds")
        for rule, histories in by_rule.items():
            finals = [h["epochs"][-1]["test_accuracy"] for h in histories]
            spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
            print(f"  {rule:18s} {statistics.fmean(finals):6.2f} ± {spread:4.2f}")
    print(f"\nfigure: {args.out}")


if __name__ == "__main__":
    main()
