"""NaturalGradient: the overdamped optimal rule in a parameter space with a metric G.

With the kinetic cost (1/2η)θ̇ᵀGθ̇ (Vastola, Gershman & Rajan 2025, App. F) and a constant
G, every formula of the Euclidean case holds with H → G⁻¹H and g → G⁻¹g; in the
overdamped limit γ ≫ √(ηkλ) the optimal flow is θ̇ = −(ηk/γ) G⁻¹∇L, and one explicit
Euler step of it is

    Δθ = −lr · G⁻¹ g,    lr = ηkΔt/γ.

Metrics (``metric``):

* None: identity (plain gradient descent);
* a constant: a positive number, a 1-D tensor (the diagonal over the group's flattened
  parameters) or an SPD matrix (n, n);
* "fisher": the diagonal empirical Fisher, a running average of g² (factor ``beta``, bias
  corrected), Δθ = −lr · g / (F + damping);
* a callable ``metric(param, grad)`` → a tensor shaped like param (a diagonal) or
  (numel, numel) (a dense block), positive definite; Δθ = −lr · (G + damping·I)⁻¹ g.

``damping`` ≥ 0 is added to the Fisher and to a callable's metric (default 1e-8; a
Fisher of tiny gradients needs more); constant metrics are used as given. The exact discounted-optimal step in a constant metric, for any γ and Δt, is
:class:`OptimalQuadratic` with ``metric=G``.
"""
from __future__ import annotations

import torch

from .base import RuleOptimizer, all_finite, check_metric, check_number, flat
from .optimal_quadratic import group_metric


class NaturalGradient(RuleOptimizer):
    """Metric-preconditioned gradient step (see module docstring).

    Args:
        params: parameters or parameter groups.
        lr: ηkΔt/γ ≥ 0 (default 1e-3).
        metric: None, constant (number, diagonal, SPD matrix), "fisher" or a callable.
        beta: Fisher running-average factor in [0, 1) (default 0.999).
        damping: ≥ 0, added to a Fisher or callable metric (default 1e-8).
        maximize: default False.
    """

    param_shaped_state = ("fisher",)

    def __init__(self, params, lr=1e-3, *, metric=None, beta=0.999, damping=1e-8, maximize=False):
        super().__init__(params, dict(lr=lr, metric=metric, beta=beta, damping=damping, maximize=maximize))

    def check_group(self, group):
        super().check_group(group)
        group["beta"] = check_number("beta", group["beta"], 0, 1, high_open=True)
        group["damping"] = check_number("damping", group["damping"], 0, None)
        metric = group["metric"]
        if isinstance(metric, str):
            if metric != "fisher":
                raise ValueError(f"metric must be one of None, a positive number, a tensor (diagonal or SPD), "
                                 f"'fisher' or a callable, got {metric!r}")
        elif not callable(metric):
            group["metric"] = check_metric(metric)
            size = sum(p.numel() for p in group["params"])
            if isinstance(group["metric"], torch.Tensor) and group["metric"].shape[0] != size:
                raise ValueError(f"metric must have size {size} (the group's parameters, flattened), "
                                 f"got shape {tuple(group['metric'].shape)}")

    def _group_step(self, group, params, grads, graph):
        # the Fisher average's check covers g (a NaN or ±inf g makes β·F + (1 − β)g² NaN or inf);
        # other metrics see g first
        if not (isinstance(group["metric"], str) and group["metric"] == "fisher") and not all_finite(grads):
            self._skip(group, "gradient")
            return
        if isinstance(group["metric"], str) and self._on_device_checks(params):   # "fisher": no host read
            averages, ok = self._running_squares(params, grads, "fisher", group["beta"], on_device=True)
            self._apply_masked(group, params, self._fisher_step(group, params, grads, averages), ok)
            return
        self._apply(group, params, self._updates(group, params, grads), "metric or step")

    def _updates(self, group, params, grads):
        lr, damping, metric = group["lr"], group["damping"], group["metric"]
        if metric == "fisher":
            return self._fisher(group, params, grads)
        if callable(metric):
            blocks = [metric(p, g) for p, g in zip(params, grads)]
            if not all_finite(blocks):
                return None
            if all(b.shape == p.shape for b, p in zip(blocks, params)):
                metric = list(torch._foreach_add(blocks, damping))   # a tuple on some torch versions
            else:
                metric = torch.block_diag(*[b if b.shape != p.shape else torch.diag(b.reshape(-1))
                                            for b, p in zip(blocks, params)])
                metric = metric + damping * torch.eye(metric.shape[0], dtype=metric.dtype, device=metric.device)
        else:  # a constant metric is used as given (checked positive definite)
            metric = group_metric(group, params)
        if metric is None:
            return torch._foreach_mul(grads, -lr)
        if isinstance(metric, float):
            return torch._foreach_mul(grads, -lr / metric)
        if isinstance(metric, list):
            return torch._foreach_div(torch._foreach_mul(grads, -lr), metric)
        return -lr * torch.linalg.solve(metric, flat(grads))

    def _fisher(self, group, params, grads):
        beta = group["beta"]
        averages = self._running_squares(params, grads, "fisher", beta)
        if averages is None:                   # g² overflowed: _apply skips and counts the step
            return None
        return self._fisher_step(group, params, grads, averages)

    def _fisher_step(self, group, params, grads, averages):
        """−lr · g / (F̂ + damping), F̂ the bias-corrected average of g²."""
        correction = 1 - group["beta"] ** (self._step_count(params) + 1)
        denominator = torch._foreach_mul(averages, 1.0 / correction)
        torch._foreach_add_(denominator, group["damping"])
        return torch._foreach_div(torch._foreach_mul(grads, -group["lr"]), denominator)
