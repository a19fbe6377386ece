"""What every rule shares: hyperparameter checks, skipping non-finite steps (curvature per group:
:mod:`learning_rules.curvature_optimizer`).

Non-finite input never reaches the parameters: when a group's gradient, curvature or
computed displacement has a NaN or an infinity, that group's step is skipped, counted in
``state[p]["skipped_steps"]`` of each of its parameters (see :attr:`RuleOptimizer.skipped_steps`)
and a ``RuntimeWarning`` is issued once per optimizer. Running averages are not updated
by a skipped step, so one bad batch does not poison them; an average whose update would
overflow (a finite gradient of 1e30 in float32 squares to inf) is not stored either, the
step is skipped and counted. ``load_state_dict`` checks what it loads as the constructor
checks its arguments (:mod:`learning_rules.checks`).

Off the CPU (:attr:`RuleOptimizer.device_checks`) the running-average steps of Ballistic,
NaturalGradient, OptimalQuadratic/DriftCompensated, BeliefAdam and WeightUncertainty, and
every RecedingHorizon step, make these decisions on the device instead
(:mod:`learning_rules.device_checks`): the same skip, no host read, the count and the warning
when ``skipped_steps`` is read.
"""
from __future__ import annotations

import warnings

import torch
from torch.optim import Optimizer

from .checks import all_finite, check_choice, check_group_keys, check_metric, check_number, check_state  # noqa: F401 (re-exported)
from .device_checks import commit_, count_skip_, finite_flag, masked_add_


class RuleOptimizer(Optimizer):
    """Base class: checked groups, lazily created state, skip-and-warn on non-finite values."""

    def __init__(self, params, defaults):
        self._warned_nonfinite = False
        super().__init__(params, defaults)

    # torch calls add_param_group for every group, including the ones of __init__
    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self.check_group(group)
        for param in group["params"]:
            if param.is_complex():
                raise ValueError(f"{type(self).__name__} supports real parameters only")

    def check_group(self, group):
        """Validate (and normalise in place) a group's hyperparameters; subclasses extend."""
        group["lr"] = check_number("lr", group["lr"], 0, None)
        group["maximize"] = bool(group.get("maximize", False))

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("_warned_nonfinite", False)

    #: state entries shaped like their parameter (running statistics); subclasses extend
    param_shaped_state: tuple = ("hessian_diag",)

    def load_state_dict(self, state_dict):
        """torch's ``load_state_dict``, then every loaded group checked as the constructor checks
        it (:meth:`check_group`: a NaN lr or a negative γ is refused) and every state entry
        checked (:func:`learning_rules.checks.check_state`). A state of another optimizer (Adam,
        another rule) is refused: its groups do not carry this rule's hyperparameters. On
        refusal a ValueError names the group or parameter and the optimizer keeps its previous
        groups and state."""
        name = type(self).__name__
        check_group_keys(name, [set(group) - {"params"} for group in self.param_groups], state_dict)
        previous_groups, previous_state = self.param_groups, self.state
        super().load_state_dict(state_dict)
        try:
            for index, group in enumerate(self.param_groups):
                try:
                    self.check_group(group)
                except ValueError as exc:
                    raise ValueError(f"{name}.load_state_dict: group {index}: {exc}") from None
                for position, param in enumerate(group["params"]):
                    if param in self.state:
                        check_state(name, self.state[param], param, f"group {index}, parameter {position}",
                                    self.param_shaped_state)
        except (ValueError, TypeError):
            self.param_groups, self.state = previous_groups, previous_state
            raise

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
        raise NotImplementedError

    def _evaluate(self, closure):
        """Run the closure with grad enabled; (loss, {}) — no graph-carrying gradients."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        return loss, {}

    @property
    def device_checks(self):
        """Whether the finite-value checks stay on the device (:mod:`learning_rules.device_checks`):
        None (default) decides by device, on it unless the parameters are on the CPU, where a read
        is free and the warning comes at the step; True or False forces it (set it on an
        instance). Covered: BeliefAdam, NaturalGradient's Fisher path, Ballistic's App. B path and
        the Hutchinson paths of Ballistic, OptimalQuadratic/DriftCompensated and
        WeightUncertainty; RecedingHorizon decides on the device always."""
        return self.__dict__.get("_device_checks")

    @device_checks.setter
    def device_checks(self, value):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"device_checks must be None (by device), True or False, got {value!r}")
        self._device_checks = value

    def _on_device_checks(self, params) -> bool:
        flag = self.device_checks
        return params[0].device.type != "cpu" if flag is None else flag

    def _apply_masked(self, group, params, updates, ok=None, check=True):
        """The device-side :meth:`_apply`: add ``updates`` (flat or a list) unless ``ok`` (a 0-dim bool
        tensor) is false or, with ``check``, an update is not finite; a skip is counted on the
        device and read when ``skipped_steps`` is (:mod:`learning_rules.device_checks`). Returns
        the flat update applied (zero when skipped), or None for a list."""
        if check:
            flag = finite_flag(updates)
            ok = flag if ok is None else ok & flag
        applied = None
        if isinstance(updates, torch.Tensor):          # flat: masked once, then split
            applied = torch.where(ok, updates, 0.0)
            unflatten_(applied, params)
        else:
            masked_add_(params, updates, ok)
        count_skip_(self.state[group["params"][0]], ok)
        self._advance(params)
        return applied

    def _fold_pending(self):
        """Move the skips counted on the device into ``skipped_steps`` (one host read per group),
        warning once as a host-side skip does."""
        for group in self.param_groups:
            head = self.state.get(group["params"][0]) if group["params"] else None
            if head and "pending_skips" in head:
                count = int(head["pending_skips"])
                head["pending_skips"].zero_()
                for _ in range(count):
                    self._skip(group, "values (found on the device)")

    def _apply(self, group, params, updates, what):
        """Add ``updates`` (flat tensor or list) to ``params``, or skip and count if not finite."""
        if updates is None or not all_finite(updates):
            self._skip(group, what)
            return
        if isinstance(updates, torch.Tensor):
            unflatten_(updates, params)
        else:
            torch._foreach_add_(params, updates)
        self._advance(params)

    @property
    def skipped_steps(self) -> int:
        """Number of steps skipped because of non-finite values (largest over groups). Skips
        counted on the device are read here (a synchronisation: ask between steps, not in a
        hot loop) and warned about then."""
        self._fold_pending()
        return max((int(s.get("skipped_steps", 0)) for s in self.state.values()), default=0)

    def _skip(self, group, what):
        for param in group["params"]:
            state = self.state[param]
            state["skipped_steps"] = int(state.get("skipped_steps", 0)) + 1
        if not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(f"{type(self).__name__}: non-finite {what}; step skipped and counted in "
                          "optimizer state (skipped_steps); this warning is shown once",
                          RuntimeWarning, stacklevel=5)

    @staticmethod
    def _grads(group):
        params, grads = [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError("sparse gradients are not supported")
            params.append(param)
            grads.append(param.grad)
        if grads and group["maximize"]:
            grads = torch._foreach_neg(grads)
        return params, grads

    def _running_squares(self, params, grads, key, beta, on_device=False):
        """The updated averages β·state[p][key] + (1 − β)·g² (state created as zeros), stored
        only when every entry is finite; None otherwise (the state keeps its old value and the
        caller skips the step). A finite but huge gradient (1e30 in float32) squares to inf:
        stored, it would freeze the rule for good (every later g/√v is 0). ``on_device``: the
        decision stays a device flag, (averages, ok) returned, the averages stored where ok."""
        averages = []
        for param in params:
            state = self.state[param]
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
            averages.append(state[key])
        updated = torch._foreach_mul(averages, beta)
        torch._foreach_addcmul_(updated, grads, grads, 1 - beta)
        if on_device:
            ok = finite_flag(updated)
            commit_(averages, updated, ok)
            return averages, ok
        if not all_finite(updated):
            return None
        torch._foreach_copy_(averages, updated)
        return averages

    def _step_count(self, params):
        """Completed steps of a group (state 'step' of its first parameter), 0 before the first."""
        state = self.state[params[0]] if params else {}
        return int(state["step"]) if "step" in state else 0

    def _advance(self, params):
        states = [self.state[param] for param in params]
        for state in states:
            if "step" not in state:
                state["step"] = torch.tensor(0.0)
        torch._foreach_add_([state["step"] for state in states], 1)     # one operation for the group


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_(updates, params):
    """Add the flat vector ``updates`` to ``params`` in order."""
    parts = torch.split(updates, [p.numel() for p in params])
    torch._foreach_add_(params, [part.view_as(p) for part, p in zip(parts, params)])


__all__ = ["RuleOptimizer", "check_number", "check_choice", "check_metric", "all_finite", "flat", "unflatten_"]
