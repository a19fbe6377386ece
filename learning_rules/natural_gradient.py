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
Fisher of tiny gradients needs more); constant metrics are used as given. The exact
discounted-optimal step in a constant metric, for any γ and Δt, is
:class:`OptimalQuadratic` with ``metric=G``.
"""
from __future__ import annotations

import torch

from .base import RuleOptimizer, check_metric, check_number, finite_flag, flat
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
        foreach, fused: torch's meaning (:mod:`learning_rules.base`; no fused kernel).
    """

    param_shaped_state = ("fisher",)

    def __init__(self, params, lr=1e-3, *, metric=None, beta=0.999, damping=1e-8, maximize=False,
                 foreach=None,
                 fused=None):
        super().__init__(params, dict(lr=lr, metric=metric, beta=beta, damping=damping, maximize=maximize),
                         foreach=foreach, fused=fused)

    def check_group(self, group):
        super().check_group(group)
        group["beta"] = check_number("beta", group["beta"], 0, 1, high_open=True)
        group["damping"] = check_number("damping", group["damping"], 0, None)
        metric = group["metric"]
        if isinstance(metric, str):
            if metric != "fisher":
                raise ValueError("metric must be one of None, a positive number, a tensor (diagonal or SPD), "
                                 f"'fisher' or a callable, got {metric!r}")
        elif not callable(metric):
            group["metric"] = check_metric(metric)
            size = sum(p.numel() for p in group["params"])
            if isinstance(group["metric"], torch.Tensor) and group["metric"].shape[0] != size:
                raise ValueError(f"metric must have size {size} (the group's parameters, flattened), "
                                 f"got shape {tuple(group['metric'].shape)}")

    def _propose(self, group, params, grads, graph, proposal):
        """−lr·G⁻¹g proposed; a non-finite g, metric or step skips it (one device flag)."""
        lr, damping, metric, ops = group["lr"], group["damping"], group["metric"], proposal.ops
        if isinstance(metric, str):                    # "fisher": a NaN or ±inf g makes β·F + (1 − β)g² so
            averages = self._running_squares(group, params, grads, "fisher", group["beta"], proposal)
            proposal.move(self._fisher_step(group, params, grads, averages, ops))
            return
        if callable(metric):
            blocks = [metric(p, g) for p, g in zip(params, grads, strict=False)]
            ok = finite_flag(blocks)
            proposal.require(ok)
            if all(b.shape == p.shape for b, p in zip(blocks, params, strict=False)):
                metric = list(ops.add(blocks, damping))
            else:
                metric = torch.block_diag(*[b if b.shape != p.shape else torch.diag(b.reshape(-1))
                                            for b, p in zip(blocks, params, strict=False)])
                identity = torch.eye(metric.shape[0], dtype=metric.dtype, device=metric.device)
                metric = torch.where(ok, metric + damping * identity, identity)   # finite input to the solve
        else:  # a constant metric is used as given (checked positive definite)
            metric = group_metric(group, params)
        if metric is None:
            proposal.move(list(ops.mul(grads, -lr)))
        elif isinstance(metric, float):
            proposal.move(list(ops.mul(grads, -lr / metric)))
        elif isinstance(metric, list):
            proposal.move(list(ops.div(list(ops.mul(grads, -lr)), metric)))
        else:   # solve_ex: a singular metric gives a non-finite step (skipped), no error check (a host read)
            proposal.move(-lr * torch.linalg.solve_ex(metric, flat(grads))[0])

    def _fisher_step(self, group, params, grads, averages, ops):
        """−lr · g / (F̂ + damping), F̂ the bias-corrected average of g² (the correction a tensor)."""
        correction = -torch.pow(group["beta"], self._completed_steps(group, params[0]) + 1) + 1
        denominator = list(ops.div(averages, correction))
        ops.add_(denominator, group["damping"])
        return list(ops.div(list(ops.mul(grads, -group["lr"])), denominator))
