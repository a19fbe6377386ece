"""Task sequences for continual learning (issue 7; the paper's App. I: weight uncertainty and
task switches, where resetting the learning rate after a switch is the optimal response).

A sequence is a list of :class:`Task`, each a :class:`training.Dataset` of its own, built from
one registered dataset:

* ``split`` (domain-incremental Split-digits): task t holds the two classes {2t, 2t + 1}
  (5 tasks on a 10-class dataset), relabelled 0 (even digit) and 1 (odd digit). The network
  has one shared two-way head (``Task.data.classes == 2``), so every task is the same output
  problem on different inputs, and the accuracy on a task is plain 2-way accuracy (chance
  50 %) whichever task came last. (Class-incremental evaluation over all 10 labels would make
  every earlier task 0 % after a switch for every rule, which measures the head, not the
  weights; task-incremental evaluation would need a per-task output mask.)
* ``permuted`` (Permuted-digits): task 0 is the dataset itself, task t ≥ 1 applies a fixed
  permutation of the input features (pixels) to both its train and test sets; the
  permutations are drawn from a ``torch.Generator`` seeded by ``seed`` (default
  ``DEFAULT_PERMUTATION_SEED``: the same sequence for every training seed). All 10 classes,
  one head.

:func:`make_tasks` validates its input (ValueError naming the valid choices) and
:data:`TASK_KINDS` lists the kinds (the CLI checks ``--tasks`` against it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import Dataset

TASK_KINDS = ("split", "permuted")
DEFAULT_PERMUTATION_SEED = 0


@dataclass(frozen=True)
class Task:
    name: str             # "task0", "task1", ...
    data: Dataset         # this task's train and test sets
    classes: tuple        # the original labels it holds
    permutation: torch.Tensor | None = None   # feature permutation (``permuted``), else None


def make_tasks(data: Dataset, kind: str, count: int | None = None,
               seed: int = DEFAULT_PERMUTATION_SEED) -> list:
    """The task sequence ``kind`` ("split" or "permuted") built from ``data``.

    ``count``: number of tasks (default 5; ``split`` allows at most ``data.classes // 2``).
    ``seed``: seed of the permutations (``permuted`` only)."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task sequence {kind!r}; valid: {', '.join(TASK_KINDS)}")
    if count is None:
        count = 5
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of tasks must be a positive integer, got {count!r}")
    if kind == "split":
        return split_tasks(data, count)
    return permuted_tasks(data, count, seed)


def split_tasks(data: Dataset, count: int) -> list:
    """Tasks t < ``count`` with classes {2t, 2t + 1} relabelled 0/1 (module docstring)."""
    if count > data.classes // 2:
        raise ValueError(f"split makes pairs of classes: at most {data.classes // 2} tasks for "
                         f"{data.classes} classes, got {count}")
    tasks = []
    for index in range(count):
        pair = (2 * index, 2 * index + 1)
        x_train, y_train = _select_pair(data.x_train, data.y_train, pair)
        x_test, y_test = _select_pair(data.x_test, data.y_test, pair)
        if len(y_train) == 0 or len(y_test) == 0:
            raise ValueError(f"classes {pair} of {data.name} have no training or test examples")
        task_data = Dataset(f"{data.name}-split{index}", x_train, y_train, x_test, y_test, 2,
                            vocabulary=data.vocabulary)
        tasks.append(Task(f"task{index}", task_data, pair))
    return tasks


def _select_pair(x, y, pair):
    """The examples of the two classes ``pair`` = (even, odd), relabelled 0 and 1."""
    even, odd = pair
    keep = (y == even) | (y == odd)
    return x[keep].contiguous(), (y[keep] - even).contiguous()


def permutations(features: int, count: int, seed: int = DEFAULT_PERMUTATION_SEED) -> list:
    """``count`` permutations of range(features): the identity, then ``count − 1`` drawn from a
    generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    drawn = [torch.randperm(features, generator=generator) for _ in range(count - 1)]
    return [torch.arange(features)] + drawn


def permuted_tasks(data: Dataset, count: int, seed: int = DEFAULT_PERMUTATION_SEED) -> list:
    """Task t: ``data`` with its input features permuted by ``permutations(...)[t]``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the permutation seed must be a non-negative integer, got {seed!r}")
    shape = data.input_shape
    features = 1
    for dim in shape:
        features *= dim

    def permute(x, order):
        return x.reshape(len(x), features)[:, order].reshape(len(x), *shape).contiguous()
    tasks = []
    for index, order in enumerate(permutations(features, count, seed)):
        task_data = Dataset(f"{data.name}-permuted{index}", permute(data.x_train, order), data.y_train,
                            permute(data.x_test, order), data.y_test, data.classes, data.vocabulary)
        tasks.append(Task(f"task{index}", task_data, tuple(range(data.classes)), order))
    return tasks


__all__ = ["DEFAULT_PERMUTATION_SEED", "TASK_KINDS", "Task", "make_tasks", "permutations",
           "permuted_tasks", "split_tasks"]
