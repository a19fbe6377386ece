"""Side-by-side comparison of rules over tasks and seeds (the Fig. 2e–f experiment, App. B).

:func:`run_grid` trains every (task, seed, rule) with the registered defaults, seed-major and
rule-interleaved, so that load on a shared machine hits every rule alike; it returns plain
dicts (JSON-ready). :func:`summarize` reduces them to what the benchmark prints: final test
accuracy (mean ± std over seeds) and its gap to Adam, mean per-epoch training wall time and its
ratio to Adam's, and the AlgoPerf-style time to a fixed target accuracy (per seed: the
training time until the test accuracy first reaches the target; per rule: the median over
seeds, ∞ unless at least half the seeds reach it), relative to the fastest rule.
"""
from __future__ import annotations

import math
import statistics

import torch

from .data import load_data
from .loop import train
from .models import make_model
from .rules import make_optimizer

TASKS = {"digits-mlp": ("digits", "mlp"), "mnist1d-cnn": ("mnist1d", "cnn")}


def run_grid(tasks, rules, seeds, epochs, batch=32, threads=1, log=None):
    """{task: {rule: [history per seed]}}; ``epochs``: {task: E} or an int."""
    torch.set_num_threads(threads)
    results = {task: {rule: [] for rule in rules} for task in tasks}
    for task in tasks:
        data_name, model_name = TASKS[task]
        data = load_data(data_name)
        task_epochs = epochs[task] if isinstance(epochs, dict) else epochs
        for seed in seeds:
            for rule in rules:
                model = make_model(model_name, data, seed=seed)
                optimizer = make_optimizer(rule, model.parameters())
                history = train(model, optimizer, data, task_epochs, seed=seed, batch=batch, progress=False)
                history["seed"] = seed
                results[task][rule].append(history)
                if log is not None:
                    last = history["epochs"][-1]
                    log(f"{task:12s} seed {seed} {rule:18s} acc {last['test_accuracy']:6.2f}%  "
                        f"{sum(r['wall_time'] for r in history['epochs']) / task_epochs:6.3f} s/epoch  "
                        f"fallbacks {history['fallbacks']}")
    return results


def time_to_target(history, target):
    """Training wall time until the test accuracy first reaches ``target`` (%), or ∞."""
    elapsed = 0.0
    for record in history["epochs"]:
        elapsed += record["wall_time"]
        if record["test_accuracy"] >= target:
            return elapsed
    return math.inf


def summarize(results, targets, reference="adam"):
    """{task: {rule: {accuracy_mean, accuracy_std, gap_to_reference, epoch_time, time_ratio,
    time_to_target, target_ratio, fallbacks}}}."""
    summary = {}
    for task, by_rule in results.items():
        rows = {}
        for rule, histories in by_rule.items():
            finals = [h["epochs"][-1]["test_accuracy"] for h in histories]
            epoch_times = [r["wall_time"] for h in histories for r in h["epochs"]]
            times = sorted(time_to_target(h, targets[task]) for h in histories)
            reached = sum(math.isfinite(t) for t in times)
            rows[rule] = {"accuracy_mean": statistics.fmean(finals),
                          "accuracy_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                          "epoch_time": statistics.fmean(epoch_times),
                          "time_to_target": statistics.median(times) if 2 * reached >= len(times) else math.inf,
                          "reached": reached, "runs": len(histories),
                          "fallbacks": sum(h["fallbacks"] for h in histories),
                          "replans": sum(h.get("replans", 0) for h in histories),
                          "solves": sum(h.get("solves", 0) for h in histories)}
        ref = rows.get(reference)
        fastest = min((row["time_to_target"] for row in rows.values()), default=math.inf)
        for row in rows.values():
            row["gap_to_reference"] = row["accuracy_mean"] - ref["accuracy_mean"] if ref else math.nan
            row["time_ratio"] = row["epoch_time"] / ref["epoch_time"] if ref else math.nan
            row["target_ratio"] = row["time_to_target"] / fastest if math.isfinite(fastest) else math.inf
        summary[task] = rows
    return summary
