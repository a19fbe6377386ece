"""Ballistic: the γ → 0 optimal rule, Δθ = −√(ηk) H^{−1/2} g Δt, and the paper's Adam-like proxy.

Undiscounted (γ = 0) planning over a short step gives the 'ballistic' rule
(Vastola, Gershman & Rajan 2025, App. E Eq. 87 and App. B Eq. 32): Δθ ∝ −H^{−1/2} g.
The paper trains networks with a proxy for H (App. B, Eq. 33), an uncentred running
average of squared gradients per weight:

    v ← β v + (1 − β) g²,       Δθ = −lr · g / √v.

Options (defaults in brackets):

* ``bias_correction`` [True]: divide v by 1 − βᵗ, as Adam does; without it the first
  steps are 1/√(1 − β) times larger (31.6× for β = 0.999).
* ``eps_placement`` ["outside"]: g/(√v + ε) like Adam, or "inside": g/√(v + ε).
* ``bias_correction=False, eps_placement="inside"`` is the paper's original rule exactly
  (:meth:`Ballistic.paper`).
* ``curvature`` ["gradient_squares"]: the proxy above; or "exact" / "hutchinson" / a
  callable (as in :class:`OptimalQuadratic`): v is then the curvature itself (|λ| for
  negative curvature), so the step is the true −lr·H^{−1/2} g (dense H: through its
  eigendecomposition), ε placed the same way.

Hyperparameters: ``lr`` = √(ηk)·Δt (with the true curvature this is the explicit Euler
step of the γ = 0 optimal flow θ̇ = −√(ηk) H^{−1/2}∇L), ``beta`` β ∈ [0, 1).
"""
from __future__ import annotations

import torch

from . import kernels
from .base import check_choice, check_number, flat
from .curvature_optimizer import CurvatureOptimizer


class Ballistic(CurvatureOptimizer):
    """Adam-like ballistic rule (see module docstring).

    Args:
        params: parameters or parameter groups.
        lr: √(ηk)·Δt > 0 (default 1e-3).
        beta: averaging factor of the squared gradients in [0, 1) (default 0.999).
        eps: ε ≥ 0 (default 1e-8).
        bias_correction: default True.
        eps_placement: "outside" (default) or "inside".
        curvature: "gradient_squares" (default), "exact", "hutchinson" or a callable.
        refresh_interval, curvature_beta, hutchinson_samples: Hutchinson options.
        maximize: default False.
        foreach, fused: torch's meaning (:mod:`learning_rules.base`; no fused kernel).
    """

    param_shaped_state = ("exp_avg_sq", "hessian_diag")

    curvature_sources = ("gradient_squares", "exact", "hutchinson")

    def __init__(self, params, lr=1e-3, *, beta=0.999, eps=1e-8, bias_correction=True,
                 eps_placement="outside", curvature="gradient_squares", refresh_interval=1,
                 curvature_beta=0.9, hutchinson_samples=1, maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, beta=beta, eps=eps, bias_correction=bias_correction,
                        eps_placement=eps_placement, curvature=curvature, refresh_interval=refresh_interval,
                        curvature_beta=curvature_beta, hutchinson_samples=hutchinson_samples,
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    @classmethod
    def paper(cls, params, lr=1e-3, beta=0.999, eps=1e-8, **options):
        """App. B Eq. 33 exactly: no bias correction, ε inside the square root."""
        return cls(params, lr, beta=beta, eps=eps, bias_correction=False, eps_placement="inside", **options)

    def check_group(self, group):
        group["lr"] = check_number("lr", group["lr"], 0, None, low_open=True)
        super().check_group(group)
        group["beta"] = check_number("beta", group["beta"], 0, 1, high_open=True)
        group["eps"] = check_number("eps", group["eps"], 0, None)
        group["bias_correction"] = bool(group["bias_correction"])
        check_choice("eps_placement", group["eps_placement"], ("outside", "inside"))

    def _propose(self, group, params, grads, graph, proposal):
        if group["curvature"] == "gradient_squares":   # a NaN or ±inf g makes β·v + (1 − β)g² NaN or inf
            averages = self._running_squares(group, params, grads, "exp_avg_sq", group["beta"], proposal)
            correction = None
            if group["bias_correction"]:                # 1 − βⁿ⁺¹, n the completed steps (a device tensor)
                correction = -torch.pow(group["beta"], self._completed_steps(group, params[0]) + 1) + 1
            proposal.move(self._scaled(group, proposal.ops, grads, averages, correction))
            return
        kind, value = self._step_curvature(group, params, grads, graph, proposal)
        gradient = flat(grads)
        if kind == "dense":
            updates = kernels.inverse_sqrt_apply(value, gradient, group["eps"], group["eps_placement"])
        else:
            value = value.abs()
            denominator = value.add_(group["eps"]).sqrt_() if group["eps_placement"] == "inside" \
                else value.sqrt_().add_(group["eps"])
            updates = gradient.div_(denominator)
        proposal.move(updates.mul_(-group["lr"]))

    @staticmethod
    def _scaled(group, ops, grads, second, correction=None):
        """−lr · g / √v̂ with v̂ = v / correction (a 0-dim tensor, or None: 1), ε inside or outside
        the square root."""
        if group["eps_placement"] == "inside":
            denominator = list(ops.div(second, correction)) if correction is not None else list(second)
            denominator = list(ops.add(denominator, group["eps"]))
            ops.sqrt_(denominator)
        else:
            denominator = list(ops.sqrt(second))
            if correction is not None:
                ops.div_(denominator, correction.sqrt())
            ops.add_(denominator, group["eps"])
        return list(ops.div(list(ops.mul(grads, -group["lr"])), denominator))
