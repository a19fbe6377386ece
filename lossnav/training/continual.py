"""Continual learning over a task sequence (issue 7; the paper's App. I.4: after a task switch
the optimal learner raises its weight variances, i.e. its learning rates — weight resetting as
the optimal response to task uncertainty).

:func:`train_sequence` trains one model and one optimizer on the tasks of
:mod:`lossnav.training.tasks` in order, by calling :func:`training.train` once per task (the epoch loop
is not duplicated) with the earlier tasks' test sets as ``evaluations``. Per task and epoch it
records the accuracy (and loss) on the current task and on every earlier one. The summary
(:func:`sequence_metrics`) holds the accuracy matrix R[i][j] = accuracy on task j after
training on task i (j ≤ i) and per task switch i:

* plasticity R[i][i] (how well the new task is learnt),
* earlier accuracy mean_{j<i} R[i][j] and forgetting mean_{j<i} (R[j][j] − R[i][j]),
* average accuracy mean_{j≤i} R[i][j].

At every task boundary an optimizer with a ``task_boundary()`` method is told so (the
hand-set reset baseline :class:`ResetAdam`, rule ``adam_reset``); every other rule is not told
about the switch (WeightUncertainty is meant to find it from the curvature by itself).

Checkpoints: ``checkpoint=PATH`` is the loop's checkpoint of the current task (written after
every epoch), whose configuration also records the task index and the finished tasks' records;
``resume=PATH`` continues the sequence bit-identically (tested). A single-task checkpoint is
refused for a sequence and vice versa (``TrainingError``).
"""
from __future__ import annotations

import statistics

import torch

from ocp.results.files import atomic_savefig

from .loop import TrainingError, load_checkpoint, train

TASK_SEED_STRIDE = 1000      # task i shuffles with seed + 1000·i


class ResetAdam(torch.optim.Adam):
    """torch.optim.Adam whose moment estimates and step counts are cleared at every task boundary
    (:meth:`task_boundary`): the hand-set reset baseline. Between boundaries (and without a task
    sequence) it is Adam."""

    def task_boundary(self) -> None:
        self.state.clear()


def _entry(task, history):
    """One task's part of the output: its records with the accuracy/loss per task seen so far."""
    epochs = []
    for record in history["epochs"]:
        accuracy = {name: value["accuracy"] for name, value in record.get("evaluations", {}).items()}
        loss = {name: value["loss"] for name, value in record.get("evaluations", {}).items()}
        accuracy[task.name], loss[task.name] = record["test_accuracy"], record["test_loss"]
        epochs.append({"epoch": record["epoch"], "train_loss": record["train_loss"],
                       "wall_time": record["wall_time"], "accuracy": accuracy, "loss": loss})
    return {"task": task.name, "classes": list(task.classes), "epochs": epochs, "steps": history["steps"],
            "skipped_steps": history["skipped_steps"], "fallbacks": history["fallbacks"]}


def train_sequence(model, optimizer, tasks, epochs, seed=0, batch=32, checkpoint=None, resume=None,
                   config=None, progress=None, on_epoch=None):
    """Train ``epochs`` epochs on each task of ``tasks`` in turn; return the list of per-task
    entries {task, classes, epochs: [{epoch, train_loss, wall_time, accuracy: {task: %},
    loss: {task: ce}}], steps, skipped_steps, fallbacks} (module docstring).

    ``on_epoch(task_index, record)`` is called after every epoch (after the checkpoint)."""
    if not tasks:
        raise ValueError("the task sequence is empty")
    completed, first = [], 0
    if resume is not None:
        saved = load_checkpoint(resume).get("config") or {}
        if "task" not in saved or "completed" not in saved:
            raise TrainingError(f"checkpoint {resume} is of a single-task run, not of a task sequence")
        first, completed = saved["task"], saved["completed"]
        if not (isinstance(first, int) and 0 <= first < len(tasks) and len(completed) == first):
            raise TrainingError(f"checkpoint {resume} does not fit a sequence of {len(tasks)} tasks")
    for index in range(first, len(tasks)):
        task = tasks[index]
        resuming = resume is not None and index == first
        if index > 0 and not resuming and hasattr(optimizer, "task_boundary"):
            optimizer.task_boundary()
        task_config = {**(config or {}), "task_names": [t.name for t in tasks], "epochs_per_task": epochs,
                       "task": index, "completed": completed}
        callback = None if on_epoch is None else (lambda record, index=index: on_epoch(index, record))
        earlier_tests = {t.name: (t.data.x_test, t.data.y_test) for t in tasks[:index]}
        history = train(model, optimizer, task.data, epochs, seed=seed + TASK_SEED_STRIDE * index,
                        batch=batch, checkpoint=checkpoint, resume=resume if resuming else None,
                        config=task_config, progress=progress, on_epoch=callback, evaluations=earlier_tests)
        completed = completed + [_entry(task, history)]
    return completed


def sequence_metrics(sequence) -> dict:
    """The accuracy matrix and the per-switch plasticity, earlier accuracy, forgetting and average
    accuracy of a :func:`train_sequence` result (module docstring); None where undefined (task 0)."""
    names = [entry["task"] for entry in sequence]
    matrix = [[entry["epochs"][-1]["accuracy"][names[j]] for j in range(i + 1)]
              for i, entry in enumerate(sequence)]
    plasticity = [row[i] for i, row in enumerate(matrix)]
    earlier = [statistics.fmean(row[:i]) if i else None for i, row in enumerate(matrix)]
    forgetting = [statistics.fmean(plasticity[j] - row[j] for j in range(i)) if i else None
                  for i, row in enumerate(matrix)]
    average = [statistics.fmean(row) for row in matrix]
    return {"accuracy_matrix": matrix, "plasticity": plasticity, "earlier_accuracy": earlier,
            "forgetting": forgetting, "average_accuracy": average, "final_average_accuracy": average[-1],
            "final_forgetting": forgetting[-1]}


def summary(config, sequence, model) -> dict:
    """The JSON of ``lossnav train --tasks``: the configuration, the per-task records, the metrics."""
    return {**config, "parameters": sum(p.numel() for p in model.parameters()), "sequence": sequence,
            **sequence_metrics(sequence), "steps": sum(e["steps"] for e in sequence),
            "skipped_steps": sequence[-1]["skipped_steps"], "fallbacks": sequence[-1]["fallbacks"]}


def plot_sequence(metrics, path) -> None:
    """Two panels: accuracy on every task per epoch over the whole sequence (task switches
    dashed), and per switch the plasticity, earlier accuracy and forgetting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sequence = metrics["sequence"]
    names = [entry["task"] for entry in sequence]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    per_task = max(len(entry["epochs"]) for entry in sequence)
    for j, name in enumerate(names):
        xs, ys = [], []
        for i, entry in enumerate(sequence[j:], start=j):
            for record in entry["epochs"]:
                xs.append(i * per_task + record["epoch"])
                ys.append(record["accuracy"][name])
        left.plot(xs, ys, marker=".", label=name)
    for i in range(1, len(names)):
        left.axvline(i * per_task + 0.5, color="grey", linestyle="--", linewidth=0.8)
    left.set_xlabel("epoch (whole sequence)")
    left.set_ylabel("test accuracy (%)")
    left.legend(fontsize=7)
    switches = range(len(names))
    right.plot(switches, metrics["plasticity"], marker="o", label="plasticity (current task)")
    right.plot(switches[1:], metrics["earlier_accuracy"][1:], marker="s", label="earlier tasks")
    right.plot(switches[1:], metrics["forgetting"][1:], marker="^", label="forgetting")
    right.set_xlabel("after training on task")
    right.set_ylabel("accuracy / drop (%)")
    right.set_xticks(list(switches))
    right.legend(fontsize=7)
    figure.suptitle(f"{metrics['rule']} on {metrics['data']}-{metrics['model']}, {metrics['tasks']} tasks "
                    f"(seed {metrics['seed']})", fontsize=9)
    figure.tight_layout()
    try:
        atomic_savefig(figure, path, dpi=120)
    finally:
        plt.close(figure)


__all__ = ["ResetAdam", "TASK_SEED_STRIDE", "plot_sequence", "sequence_metrics", "summary",
           "train_sequence"]
