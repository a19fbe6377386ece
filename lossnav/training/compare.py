"""Side-by-side comparison of rules over tasks and seeds (the Fig. 2e–f experiment, App. B).

:func:`run_grid` trains every (task, seed, rule) with the registered defaults, seed-major and
rule-interleaved, so that load on a shared machine hits every rule alike; it returns plain
dicts (JSON-ready). :func:`summarize` reduces them to what the benchmark prints: final test
accuracy (mean ± std over seeds) and its gap to Adam, mean per-epoch training wall time and its
ratio to Adam's, and the AlgoPerf-style time to a fixed target accuracy (per seed: the
training time until the test accuracy first reaches the target; per rule: the median over
seeds, ∞ unless at least half the seeds reach it), relative to the fastest rule.

Fair tuning (:func:`tune`): every rule gets the same budget, ``trials`` learning rates on a
log grid around its registered default (:func:`lr_grid`: default × 10^{−1 … +1}), each trained
on the training set minus a held-out validation part (:func:`validation_split`, carved from
the training set: the test set is never seen while choosing) and scored on that validation
part; the chosen rates then run over the seeds on the real train/test split.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace

import torch

from .data import Dataset, load_data
from .loop import TrainingError, train
from .models import make_model
from .rules import RULES, make_optimizer

TASKS = {"digits-mlp": ("digits", "mlp"), "mnist1d-cnn": ("mnist1d", "cnn"),
         "modular-transformer": ("modular", "transformer")}


@dataclass(frozen=True)
class TaskSettings:
    """How a task is run: dataset and model options, minibatch size."""
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    batch: int = 32


def validation_split(data: Dataset, fraction: float = 0.2, seed: int = 0) -> Dataset:
    """``data`` with its test set replaced by a random ``fraction`` of its training set (and that
    part removed from training): for choosing hyperparameters without looking at the test set."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction!r}")
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
    held = max(1, round(fraction * len(order)))
    keep, val = order[held:], order[:held]
    return replace(data, name=f"{data.name}-validation",
                   x_train=data.x_train[keep], y_train=data.y_train[keep],
                   x_test=data.x_train[val], y_test=data.y_train[val])


def lr_grid(default: float, trials: int, span: float = 1.0) -> list:
    """``trials`` learning rates default × 10^t, t evenly spaced over [−span, span] (the default
    itself is on the grid when ``trials`` is odd)."""
    if trials == 1:
        return [float(default)]
    return [float(default) * 10 ** (span * (2 * i / (trials - 1) - 1)) for i in range(trials)]


def run_grid(tasks, rules, seeds, epochs, batch=32, threads=1, log=None, lrs=None, settings=None,
             validation=None, device="cpu"):
    """{task: {rule: [history per seed]}}; ``epochs``: {task: E} or an int. ``lrs``: {task: {rule:
    lr}} (missing: the rule's default); ``settings``: {task: :class:`TaskSettings`} (its batch
    wins over ``batch``); ``validation``: a fraction, to train and score on
    :func:`validation_split` instead of the test set. A run that diverges is recorded with
    ``"diverged": True`` and 0 % accuracy from then on. Each history gets ``seed``, ``lr``,
    ``batch``, ``steps_per_epoch`` and ``step_time`` (mean training wall time per step)."""
    torch.set_num_threads(threads)
    results = {task: {rule: [] for rule in rules} for task in tasks}
    for task in tasks:
        data_name, model_name = TASKS[task]
        setting = (settings or {}).get(task, TaskSettings(batch=batch))
        data = load_data(data_name, **setting.data)
        if validation is not None:
            data = validation_split(data, validation)
        task_epochs = epochs[task] if isinstance(epochs, dict) else epochs
        for seed in seeds:
            for rule in rules:
                lr = (lrs or {}).get(task, {}).get(rule, RULES[rule].default_lr)
                history = _run_one(data, model_name, setting, rule, lr, seed, task_epochs, device)
                results[task][rule].append(history)
                if log is not None:
                    last = history["epochs"][-1]
                    diverged = "  DIVERGED" if history.get("diverged") else ""
                    log(f"{task:20s} seed {seed} {rule:10s} lr {lr:9.3g} acc {last['test_accuracy']:6.2f}%  "
                        f"{1e3 * history['step_time']:7.2f} ms/step  plans {history.get('replans', 0)}  "
                        f"fallbacks {history['fallbacks']}{diverged}")
    return results


def _run_one(data, model_name, setting, rule, lr, seed, epochs, device):
    model = make_model(model_name, data, seed=seed, **setting.model).to(device)
    optimizer = make_optimizer(rule, model.parameters(), lr)
    batches = len(data.x_train) // setting.batch
    try:
        history = train(model, optimizer, data, epochs, seed=seed, batch=setting.batch, progress=False)
    except TrainingError:          # diverged: what ran is lost to the exception; score it as a failure
        history = {"epochs": [{"epoch": e, "train_loss": math.inf, "test_loss": math.inf,
                               "test_accuracy": 0.0, "wall_time": math.nan} for e in range(1, epochs + 1)],
                   "steps": 0, "fallbacks": int(getattr(optimizer, "fallbacks", 0)), "skipped_steps": 0,
                   "diverged": True}
    times = [r["wall_time"] for r in history["epochs"] if math.isfinite(r["wall_time"])]
    history.update(seed=seed, lr=lr, batch=setting.batch, steps_per_epoch=batches,
                   step_time=statistics.fmean(times) / batches if times else math.nan)
    return history


def tune(tasks, rules, trials, epochs, settings=None, validation=0.2, seed=0, span=1.0, log=None,
         device="cpu"):
    """The fair tuning budget: for every rule the same ``trials`` learning rates
    (:func:`lr_grid` around its default), trained with ``seed`` on :func:`validation_split` and
    scored on the validation part by the final accuracy, ties broken by the mean accuracy over
    the epochs (the faster one). Returns ({task: {rule: chosen lr}}, {task: {rule: [(lr, final
    validation accuracy, mean validation accuracy)]}})."""
    chosen, scores = {}, {}
    for task in tasks:
        chosen[task], scores[task] = {}, {rule: [] for rule in rules}
        grids = {rule: lr_grid(RULES[rule].default_lr, trials, span) for rule in rules}
        for index in range(trials):              # rules interleaved per trial: load hits them alike
            lrs = {task: {rule: grids[rule][index] for rule in rules}}
            results = run_grid([task], rules, [seed], epochs, lrs=lrs, settings=settings,
                               validation=validation, log=log, device=device)
            for rule in rules:
                history = results[task][rule][0]
                accuracies = [r["test_accuracy"] for r in history["epochs"]]
                scores[task][rule].append((grids[rule][index], accuracies[-1], statistics.fmean(accuracies)))
        for rule in rules:
            chosen[task][rule] = max(scores[task][rule], key=lambda row: (row[1], row[2]))[0]
    return chosen, scores


def time_to_target(history, target):
    """Training wall time until the test accuracy first reaches ``target`` (%), or ∞."""
    elapsed = 0.0
    for record in history["epochs"]:
        elapsed += record["wall_time"]
        if record["test_accuracy"] >= target:
            return elapsed
    return math.inf


def steps_to_target(history, target):
    """Optimizer steps until the test accuracy first reaches ``target`` (%), or ∞ (epoch resolution)."""
    for record in history["epochs"]:
        if record["test_accuracy"] >= target:
            return record["epoch"] * history.get("steps_per_epoch", history["steps"] / len(history["epochs"]))
    return math.inf


def _median_reached(values):
    """The median over seeds, ∞ unless at least half of them are finite."""
    values = sorted(values)
    return statistics.median(values) if 2 * sum(map(math.isfinite, values)) >= len(values) else math.inf


def summarize(results, targets, reference="adam"):
    """{task: {rule: {lr, accuracy_mean, accuracy_std, gap_to_reference, epoch_time, time_ratio,
    step_time, step_ratio, time_to_target, steps_to_target, target_ratio, reached, runs,
    diverged, fallbacks, replans, solves, host_syncs}}}; ratios are to ``reference``'s row of
    the same task (``time_ratio``, ``step_ratio``) or to the fastest rule (``target_ratio``)."""
    summary = {}
    for task, by_rule in results.items():
        rows = {}
        for rule, histories in by_rule.items():
            finals = [h["epochs"][-1]["test_accuracy"] for h in histories]
            epoch_times = [r["wall_time"] for h in histories for r in h["epochs"]
                           if math.isfinite(r["wall_time"])]
            step_times = [h["step_time"] for h in histories if math.isfinite(h.get("step_time", math.nan))]
            if not step_times and epoch_times:
                step_times = [statistics.fmean(epoch_times) / (h["steps"] / len(h["epochs"]))
                              for h in histories if h["steps"]]
            times = [time_to_target(h, targets[task]) for h in histories]
            steps = [steps_to_target(h, targets[task]) for h in histories]
            rows[rule] = {"lr": histories[0].get("lr"),
                          "accuracy_mean": statistics.fmean(finals),
                          "accuracy_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                          "epoch_time": statistics.fmean(epoch_times) if epoch_times else math.nan,
                          "step_time": statistics.fmean(step_times) if step_times else math.nan,
                          "time_to_target": _median_reached(times),
                          "steps_to_target": _median_reached(steps),
                          "reached": sum(map(math.isfinite, times)), "runs": len(histories),
                          "diverged": sum(bool(h.get("diverged")) for h in histories),
                          "fallbacks": sum(h["fallbacks"] for h in histories),
                          "replans": sum(h.get("replans", 0) for h in histories),
                          "solves": sum(h.get("solves", 0) for h in histories),
                          "host_syncs": sum(h.get("host_syncs", 0) for h in histories)}
        ref = rows.get(reference)
        fastest = min((row["time_to_target"] for row in rows.values()), default=math.inf)
        for row in rows.values():
            row["gap_to_reference"] = row["accuracy_mean"] - ref["accuracy_mean"] if ref else math.nan
            row["time_ratio"] = row["epoch_time"] / ref["epoch_time"] if ref else math.nan
            row["step_ratio"] = row["step_time"] / ref["step_time"] if ref else math.nan
            row["target_ratio"] = row["time_to_target"] / fastest if math.isfinite(fastest) else math.inf
        summary[task] = rows
    return summary
