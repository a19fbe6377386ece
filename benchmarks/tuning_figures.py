"""Figures of ``bench_train.py --tuning``: test accuracy against optimizer steps, mean ± std over
seeds (shaded), one panel per task, the target accuracy dashed; and the transformer at the
registered defaults. Small PNGs (docs/ keeps them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"mpc": "tab:green", "mpcw": "tab:olive", "adam": "tab:red", "adamw": "tab:orange", "sgd": "black",
           "ballistic": "tab:blue", "optimal_quadratic": "tab:purple", "natural_gradient": "tab:brown"}


def _panel(axis, by_rule, rules, target, title):
    for rule in rules:
        histories = by_rule.get(rule) or []
        if not histories:
            continue
        accuracy = np.array([[r["test_accuracy"] for r in h["epochs"]] for h in histories])
        steps = np.arange(1, accuracy.shape[1] + 1) * histories[0].get("steps_per_epoch", 1)
        mean, std = accuracy.mean(0), accuracy.std(0)
        label = f"{rule} (lr {histories[0].get('lr', float('nan')):.2g})"
        axis.plot(steps, mean, color=COLOURS.get(rule), label=label, lw=1.3)
        axis.fill_between(steps, mean - std, mean + std, color=COLOURS.get(rule), alpha=0.2, lw=0)
    axis.axhline(target, color="grey", ls="--", lw=0.8)
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("optimizer steps")
    axis.set_ylim(0, 100)
    axis.legend(fontsize=7, loc="lower right")


def draw(results, defaults, targets, rules, directory) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    tasks = list(results)
    figure, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.0), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        seeds = len(next(iter(results[task].values())))
        _panel(axis, results[task], rules, targets[task], f"{task}, tuned lr ({seeds} seeds)")
    axes[0][0].set_ylabel("test accuracy (%)")
    figure.tight_layout()
    paths.append(directory / "training_tuned.png")
    figure.savefig(paths[-1], dpi=80)
    plt.close(figure)
    for task, by_rule in defaults.items():
        figure, axis = plt.subplots(figsize=(4.2, 3.0))
        _panel(axis, by_rule, rules, targets[task], f"{task}, registered default lr")
        axis.set_ylabel("test accuracy (%)")
        figure.tight_layout()
        paths.append(directory / f"training_{task}_defaults.png")
        figure.savefig(paths[-1], dpi=80)
        plt.close(figure)
    return paths
