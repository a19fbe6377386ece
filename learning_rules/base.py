"""What every rule shares: hyperparameter checks, group state, and the one step path.

**One step path** (the idea of torch's ``found_inf``/``capturable`` and of optax's
``apply_if_finite``). A rule does not write: it *proposes* (:class:`StepProposal`) the
parameter updates and the new values of its state tensors. The base decides with one 0-dim
boolean on the parameters' device whether every proposed floating value is finite (and any
validity the rule adds, e.g. "a curvature estimate exists"), and writes all of it masked by
that flag (``torch.where``): a step with a NaN or an infinity anywhere changes nothing, the
step counter included, on every device, the CPU too, and no step reads anything on the host.
Running averages are therefore not poisoned by one bad batch; an average whose update would
overflow (a finite gradient of 1e30 in float32 squares to inf) is not stored either.

Group state lives in the group, ``group["group_state"]`` (saved in ``state_dict``'s
``param_groups``): ``step`` (completed steps, int64 on the parameters' device, read by bias
corrections as a tensor), ``skipped_steps`` (same), ``calls`` (a host int: step calls, the
clock of refresh schedules, so a schedule is the same on every device without a host read).
Skips are read only when :attr:`RuleOptimizer.skipped_steps` is (one synchronisation), and a
``RuntimeWarning`` is issued then, once per optimizer. A finite sum proves every entry finite;
a sum that overflows from finite entries (values near the dtype's maximum) counts as not
finite, conservatively.

``foreach`` (torch's meaning): None picks the multi-tensor ``torch._foreach_*`` kernels where
torch would (all parameters on CUDA), True forces them, False runs the same operations tensor
by tensor; results agree to round-off. ``fused``: no rule has a fused kernel; ``fused=True``
raises a RuntimeError saying so. ``load_state_dict`` checks what it loads as the constructor
checks its arguments (:mod:`learning_rules.checks`) and upgrades a state saved in the earlier
per-parameter layout (counters in the first parameter's state).
"""
from __future__ import annotations

import warnings

import torch
from torch.optim import Optimizer
from torch.optim.optimizer import _default_to_fused_or_foreach

from .checks import (
    COUNTERS,
    all_finite,
    check_choice,
    check_group_keys,
    check_metric,
    check_number,
    check_state,
)
from .tensor_lists import TensorLists

#: counters of a group, on the parameters' device (int64)
GROUP_COUNTERS = ("step", "skipped_steps")


def finite_flag(tensors) -> torch.Tensor:
    """0-dim bool tensor on the tensors' device: whether the sum of every floating entry is finite."""
    sums = [t.sum() for t in tensors if t.is_floating_point()]
    return torch.stack(sums).sum().isfinite() if len(sums) > 1 else sums[0].isfinite()


class StepProposal:
    """The writes one group step proposes: ``updates`` added to ``params`` (a flat tensor or a
    list shaped like them), ``stored`` state tensors overwritten by ``values``, and ``valid``,
    a 0-dim bool the rule adds to the finiteness test. :meth:`RuleOptimizer._commit` writes
    them, all or nothing."""

    def __init__(self, params, ops):
        self.params, self.ops = params, ops
        self.updates, self.stored, self.values, self.valid = None, [], [], None

    def move(self, updates):
        self.updates = updates

    def store(self, stored, values):
        self.stored.extend(stored)
        self.values.extend(values)

    def require(self, flag):
        self.valid = flag if self.valid is None else self.valid & flag

    def reject(self):
        """The step is skipped for a reason known on the host (no model, no estimate yet)."""
        self.require(torch.zeros((), dtype=torch.bool, device=self.params[0].device))


class RuleOptimizer(Optimizer):
    """Base class: checked groups, group state, and the masked step path (module docstring)."""

    def __init__(self, params, defaults, *, foreach=None, fused=None):
        self._warned_nonfinite = False
        super().__init__(params, {**defaults, "foreach": foreach, "fused": fused})

    # torch calls add_param_group for every group, including the ones of __init__
    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self.check_group(group)
        group.setdefault("group_state", {})
        for param in group["params"]:
            if param.is_complex():
                raise ValueError(f"{type(self).__name__} supports real parameters only")

    def check_group(self, group):
        """Validate (and normalise in place) a group's hyperparameters; subclasses extend."""
        group["lr"] = check_number("lr", group["lr"], 0, None)
        group["maximize"] = bool(group.get("maximize", False))
        for key in ("foreach", "fused"):
            if not (group.get(key) is None or isinstance(group.get(key), bool)):
                raise ValueError(f"{key} must be None, True or False, got {group.get(key)!r}")
        if group.get("fused"):
            raise RuntimeError(f"{type(self).__name__} has no fused kernel: fused=True is not supported "
                               "(use fused=None or False; foreach=True selects the multi-tensor kernels)")

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("_warned_nonfinite", False)

    #: state entries shaped like their parameter (running statistics); subclasses extend
    param_shaped_state: tuple = ("hessian_diag",)

    #: keys the per-parameter layout kept in (the first) parameter's state, now group state
    legacy_group_keys: tuple = ("step", "skipped_steps", "pending_skips")

    def load_state_dict(self, state_dict):
        """torch's ``load_state_dict``, then every loaded group checked as the constructor checks
        it (:meth:`check_group`: a NaN lr or a negative γ is refused) and every state entry
        checked (:func:`learning_rules.checks.check_state`). A state of another optimizer (Adam,
        another rule) is refused: its groups do not carry this rule's hyperparameters. A state of
        the per-parameter layout (no ``group_state``) is upgraded (:func:`upgrade_layout`). On
        refusal a ValueError names the group or parameter and the optimizer keeps its previous
        groups and state."""
        name = type(self).__name__
        state_dict = upgrade_layout(state_dict, self.legacy_group_keys)
        check_group_keys(name, [set(group) - {"params"} for group in self.param_groups], state_dict)
        previous_groups, previous_state = self.param_groups, self.state
        super().load_state_dict(state_dict)
        try:
            for index, group in enumerate(self.param_groups):
                where = f"{name}.load_state_dict: group {index}"
                try:
                    self.check_group(group)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
                if not isinstance(group["group_state"], dict):
                    raise ValueError(f"{where}: group_state must be a dict")
                check_state(name, group["group_state"], None, f"group {index}, group state")
                self._place_group_state(group)
                for position, param in enumerate(group["params"]):
                    if param in self.state:
                        check_state(name, self.state[param], param, f"group {index}, parameter {position}",
                                    self.param_shaped_state)
        except (ValueError, TypeError):
            self.param_groups, self.state = previous_groups, previous_state
            raise

    @staticmethod
    def _place_group_state(group):
        """Loaded group state onto the parameters' device (counters as int64, floats in their dtype)."""
        if not group["params"]:
            return
        like, state = group["params"][0], group["group_state"]
        for key, value in state.items():
            if key in COUNTERS:
                state[key] = torch.as_tensor(value).to(device=like.device, dtype=torch.int64)
            elif isinstance(value, torch.Tensor):
                state[key] = value.to(device=like.device, dtype=like.dtype if value.is_floating_point()
                                      else value.dtype)

    # -- the step -------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One step per group; returns the closure's loss (None without closure)."""
        loss, graph = self._evaluate(closure)
        for group in self.param_groups:
            params, grads = self._grads(group)
            if params:
                self._group_step(group, params, grads, graph)
        return loss

    def _group_step(self, group, params, grads, graph):
        """Propose, then commit masked (the one path); the schedule clock advances."""
        proposal = StepProposal(params, self._ops(group, params))
        self._propose(group, params, grads, graph, proposal)
        self._commit(group, proposal)

    def _propose(self, group, params, grads, graph, proposal):
        raise NotImplementedError

    def _commit(self, group, proposal):
        """Write ``proposal`` where one device flag says all of it is finite (and valid), else
        nothing; count the step as completed or skipped. Returns the flag."""
        params, ops, updates = proposal.params, proposal.ops, proposal.updates
        if isinstance(updates, torch.Tensor):
            updates = [part.view_as(p) for part, p in zip(torch.split(updates, [p.numel() for p in params]),
                                                          params, strict=False)]
        ok = finite_flag([*updates, *proposal.values])
        if proposal.valid is not None:
            ok = ok & proposal.valid
        if proposal.stored:
            masked = [torch.where(ok, new, old)
                      for new, old in zip(proposal.values, proposal.stored, strict=True)]
            ops.copy_(proposal.stored, masked)
        ops.add_(params, [torch.where(ok, update, 0.0) for update in updates])
        state = self.group_state(group, params[0])
        state["step"].add_(ok)
        state["skipped_steps"].add_(ok.logical_not())
        state["calls"] = int(state.get("calls", 0)) + 1
        return ok

    def group_state(self, group, like):
        """The group's state, its counters created on ``like``'s device at first use."""
        state = group["group_state"]
        for key in GROUP_COUNTERS:
            if key not in state:
                state[key] = torch.zeros((), dtype=torch.int64, device=like.device)
        return state

    def _completed_steps(self, group, like):
        """Completed steps of the group as a 0-dim tensor in ``like``'s dtype (no host read)."""
        return self.group_state(group, like)["step"].to(like.dtype)

    def _calls(self, group):
        """Step calls that reached the group so far (host int): the clock of refresh schedules."""
        return int(group["group_state"].get("calls", 0))

    def _ops(self, group, params):
        """Multi-tensor or per-tensor operations, by the group's ``foreach`` (torch's default)."""
        foreach = group["foreach"]
        if foreach is None:
            foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1]
        return TensorLists(foreach)

    def _evaluate(self, closure):
        """Run the closure with grad enabled; (loss, {}) — no graph-carrying gradients."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        return loss, {}

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because of non-finite values (largest over groups). Read here, one
        synchronisation (ask between steps, not in a hot loop), and warned about once."""
        counts = [int(group["group_state"]["skipped_steps"]) for group in self.param_groups
                  if "skipped_steps" in group.get("group_state", {})]
        count = max(counts, default=0)
        if count and not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(f"{type(self).__name__}: non-finite values (gradient, curvature, running average "
                          f"or step); {count} step(s) skipped and counted (skipped_steps); this warning is "
                          "shown once", RuntimeWarning, stacklevel=2)
        return count

    def _grads(self, group):
        params, grads = [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError("sparse gradients are not supported")
            params.append(param)
            grads.append(param.grad)
        if grads and group["maximize"]:
            grads = list(self._ops(group, params).neg(grads))
        return params, grads

    def _running_squares(self, group, params, grads, key, beta, proposal):
        """The updated averages β·state[p][key] + (1 − β)·g² (state created as zeros), proposed
        for storing (:class:`StepProposal`: kept where not finite, so a g² that overflows does not
        freeze the rule); returns the new averages (a list like ``params``)."""
        averages = []
        for param in params:
            state = self.state[param]
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
            averages.append(state[key])
        ops = proposal.ops
        updated = list(ops.mul(averages, beta))
        ops.addcmul_(updated, grads, grads, value=1 - beta)
        proposal.store(averages, updated)
        return updated


def upgrade_layout(state_dict, keys):
    """A state_dict of the per-parameter layout (no ``group_state`` in its groups) in the group
    layout: ``keys`` move from the first parameter's state to the group's (a skip count as the
    largest over the parameters plus the pending ones), other parameters' copies are dropped,
    ``foreach`` and ``fused`` default to None. Anything else is returned as given."""
    if not isinstance(state_dict, dict) or not isinstance(state_dict.get("param_groups"), (list, tuple)) \
            or not isinstance(state_dict.get("state"), dict):
        return state_dict
    groups, states = [], {key: dict(value) if isinstance(value, dict) else value
                          for key, value in state_dict["state"].items()}
    for group in state_dict["param_groups"]:
        if not isinstance(group, dict) or "group_state" in group:
            groups.append(group)
            continue
        group = {"foreach": None, "fused": None, **group, "group_state": {}}
        members = [states[index] for index in group.get("params", ()) if isinstance(states.get(index), dict)]
        if members:
            skipped = max(int(member.get("skipped_steps", 0)) for member in members)
            for key in keys:
                if key in members[0]:
                    group["group_state"][key] = members[0][key]
                for member in members:
                    member.pop(key, None)
            pending = group["group_state"].pop("pending_skips", 0)
            if "step" in group["group_state"]:      # the old schedules counted completed steps
                completed = int(group["group_state"]["step"])
                group["group_state"]["step"] = group["group_state"]["calls"] = completed
            group["group_state"]["skipped_steps"] = skipped + int(pending)
        groups.append(group)
    return {**state_dict, "param_groups": groups, "state": states}


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


__all__ = ["RuleOptimizer", "StepProposal", "check_number", "check_choice", "check_metric", "all_finite",
           "flat",
           "finite_flag", "upgrade_layout"]
