"""Skipping a non-finite step without asking the host: the device-side form of the rules' checks.

A rule decides whether a step's gradient, running averages and update are finite before it
writes them (:class:`learning_rules.base.RuleOptimizer`). Asked as a Python ``bool``, each
such decision is a host read: on a GPU the host waits for the queue to drain, every step.
Here the decision stays a 0-dim boolean tensor on the parameters' device and the writes are
masked by it (``torch.where``): a step whose values are not finite adds nothing and leaves
the averages as they were, exactly as the host-side skip does, and is counted in the group's
``pending_skips`` (an int64 on the device), which the host reads only when the count is asked
for (``optimizer.skipped_steps``), warning then (:meth:`RuleOptimizer._fold_pending`).

One difference from the host-side skip, by necessity: the step counters (``state["step"]``,
host tensors by torch's convention, which bias corrections and refresh schedules read) advance
on a skipped step too, since knowing it was skipped would be a host read.

A finite sum proves every entry finite; a sum that overflows from finite entries (values near
the dtype's maximum) counts as not finite here, conservatively (the host-side check looks
closer before skipping).
"""
from __future__ import annotations

import torch


def finite_flag(tensors) -> torch.Tensor:
    """0-dim bool tensor, on the tensors' device: whether the sum of every entry is finite."""
    if isinstance(tensors, torch.Tensor):
        return tensors.sum().isfinite()
    return torch.stack([t.sum() for t in tensors]).sum().isfinite()


def masked_add_(params, updates, ok) -> None:
    """params += updates where ``ok`` (0-dim bool), else nothing; ``updates`` a list like params."""
    torch._foreach_add_(params, [torch.where(ok, update, 0.0) for update in updates])


def commit_(stored, updated, ok) -> None:
    """stored ← updated where ``ok``, else unchanged (lists of tensors, in place)."""
    torch._foreach_copy_(stored, [torch.where(ok, new, old) for new, old in zip(updated, stored)])


def count_skip_(state, ok) -> None:
    """``state["pending_skips"]`` += (not ok), created on ``ok``'s device."""
    if "pending_skips" not in state:
        state["pending_skips"] = torch.zeros((), dtype=torch.int64, device=ok.device)
    state["pending_skips"].add_(ok.logical_not())


__all__ = ["commit_", "count_skip_", "finite_flag", "masked_add_"]
