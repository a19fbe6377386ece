"""OptimalQuadratic: the exact discounted-optimal step on a local quadratic model.

At each step the loss is modelled as L(θ0) + gᵀδ + ½δᵀHδ and the learner follows the
optimal infinite-horizon path of J = ∫ e^{−γt}[(1/2η)θ̇ᵀGθ̇ + kL] dt (Vastola, Gershman &
Rajan 2025, App. E Eq. 82, App. F) for one step of duration Δt:

    Δθ = −(I − e^{RΔt}) H⁻¹ g,   R = (γ/2)I − (γ²/4·I + ηkH)^{1/2}     (G = I)

computed per eigen-direction in the stable form of :mod:`learning_rules.kernels`. Because
exponential discounting is time-consistent, repeating the step re-plans the same path: on
a quadratic loss with exact curvature the iterates lie on the analytic trajectory at
t = nΔt for every Δt (to round-off).

Hyperparameters: ``lr`` = Δt (the step's duration; schedulers scale it), ``eta`` η,
``k`` k (only ηk matters), ``gamma`` γ ≥ 0, ``metric`` a constant G. Limits:
γ ≫ √(ηkλ): SGD with learning rate ηkΔt/γ; γ → 0 and small Δt: the ballistic rule
−√(ηk) H^{−1/2} g Δt; Δt → ∞: Newton, −H⁻¹g.

Negative curvature (``negative_curvature``): ``"abs"`` (default) uses |λ| (saddle-free:
downhill, step size set by the curvature's magnitude); ``"clip"`` treats λ < 0 as flat.
``damping`` ≥ 0 is a floor on the curvature, required > 0 at γ = 0, where the step
√(ηk/λ)Δt is unbounded as λ → 0.
"""
from __future__ import annotations

import torch

from . import kernels
from .base import CurvatureOptimizer, all_finite, check_choice, check_metric, check_number, flat, unflatten_


class OptimalQuadratic(CurvatureOptimizer):
    """Discounted-optimal step on a local quadratic model (see module docstring).

    Args:
        params: parameters or parameter groups.
        lr: Δt > 0, the duration of one step (default 1e-3).
        eta, k: step-cost scale η > 0 and loss weight k ≥ 0 (default 1, 1).
        gamma: discount rate γ ≥ 0 (default 1).
        curvature: "exact" (dense Hessian of each group, small models), "hutchinson"
            (diagonal from Hessian-vector products, the default) or a callable
            ``(param, grad) -> tensor`` (diagonal shaped like param, or a (numel, numel) block).
        refresh_interval: Hutchinson: steps between curvature estimates (default 1).
        curvature_beta: Hutchinson: running-average factor of the estimates in [0, 1),
            bias corrected (default 0.9; 0 = newest estimate only).
        hutchinson_samples: Rademacher probes per estimate (default 1).
        damping: curvature floor ≥ 0 (default 0; must be > 0 when gamma = 0).
        negative_curvature: "abs" (default) or "clip".
        metric: constant metric G: None (identity), a positive number, a 1-D tensor (the
            diagonal over the group's flattened parameters) or an SPD matrix.
        maximize: maximize the objective instead (the curvature of −L is used).
    """

    def __init__(self, params, lr=1e-3, *, eta=1.0, k=1.0, gamma=1.0, curvature="hutchinson",
                 refresh_interval=1, curvature_beta=0.9, hutchinson_samples=1, damping=0.0,
                 negative_curvature="abs", metric=None, maximize=False):
        defaults = dict(lr=lr, eta=eta, k=k, gamma=gamma, curvature=curvature,
                        refresh_interval=refresh_interval, curvature_beta=curvature_beta,
                        hutchinson_samples=hutchinson_samples, damping=damping,
                        negative_curvature=negative_curvature, metric=metric, maximize=maximize)
        super().__init__(params, defaults)

    def check_group(self, group):
        group["lr"] = check_number("lr", group["lr"], 0, None, low_open=True)
        super().check_group(group)
        group["eta"] = check_number("eta", group["eta"], 0, None, low_open=True)
        group["k"] = check_number("k", group["k"], 0, None)
        group["gamma"] = check_number("gamma", group["gamma"], 0, None)
        group["damping"] = check_number("damping", group["damping"], 0, None)
        check_choice("negative_curvature", group["negative_curvature"], ("abs", "clip"))
        group["metric"] = check_metric(group["metric"])
        size = sum(p.numel() for p in group["params"])
        metric = group["metric"]
        if isinstance(metric, torch.Tensor) and metric.shape[0] != size:
            raise ValueError(f"metric must have size {size} (the group's parameters, flattened), "
                             f"got shape {tuple(metric.shape)}")
        if group["gamma"] == 0 and group["damping"] == 0 and self._drift_rate(group) == 0:
            raise ValueError("damping must be > 0 (in (0, ∞)) when gamma = 0: the undiscounted step "
                             "√(ηk/λ)Δt is unbounded as the curvature λ → 0")

    def _drift_rate(self, group):
        return 0.0

    @torch.no_grad()
    def step(self, closure=None):
        """One optimal step per group; returns the closure's loss (None without closure)."""
        loss, graph = self._evaluate(closure)
        for group in self.param_groups:
            params, grads = self._grads(group)
            if not params:
                continue
            if not all_finite(grads):
                self._skip(group, "gradient")
                continue
            curvature = self._curvature(group, params, grads, graph)
            if curvature is None:
                self._skip(group, "curvature")
                continue
            updates = self._displacement(group, params, grads, curvature)
            if not all_finite(updates):
                self._skip(group, "step (raise damping?)")
                continue
            if isinstance(updates, torch.Tensor):
                unflatten_(updates, params)
            else:
                torch._foreach_add_(params, updates)
            self._advance(params)
        return loss

    def _displacement(self, group, params, grads, curvature):
        kind, value = curvature
        metric = group_metric(group, params)
        if kind == "dense" or (isinstance(metric, torch.Tensor) and metric.ndim == 2):
            hessian = value if kind == "dense" else torch.diag(flat(value))
            return self._dense_displacement(group, params, hessian, flat(grads), metric)
        return self._diagonal_displacement(group, params, grads, value, metric)

    def _dense_displacement(self, group, params, hessian, gradient, metric):
        if isinstance(metric, list):
            metric = flat(metric)
        return kernels.spectral_displacement(
            hessian, gradient, flat(params), group["lr"], group["eta"] * group["k"], group["gamma"],
            self._drift_rate(group), metric, group["damping"], group["negative_curvature"])

    def _diagonal_displacement(self, group, params, grads, diagonal, metric):
        """Elementwise ψ(λ)(ηk g + cGθ)/G with foreach kernels (λ = h/G, metric diagonal)."""
        dt, eta_k, gamma = group["lr"], group["eta"] * group["k"], group["gamma"]
        decay = self._drift_rate(group)
        coupling = decay * (decay + gamma)
        curv = list(diagonal) if metric is None else torch._foreach_div(diagonal, metric)
        if group["negative_curvature"] == "abs":
            curv = torch._foreach_abs(curv)
        if group["damping"] > 0 or group["negative_curvature"] == "clip":
            torch._foreach_clamp_min_(curv, group["damping"])
        torch._foreach_mul_(curv, eta_k)                                   # ηkλ
        denominator = torch._foreach_add(curv, (0.5 * gamma + decay) ** 2)
        torch._foreach_sqrt_(denominator)
        torch._foreach_add_(denominator, 0.5 * gamma)                     # γ/2 + s
        if coupling:
            torch._foreach_add_(curv, coupling)
        rate = torch._foreach_div(curv, denominator)                      # −r ≥ 0
        torch._foreach_mul_(rate, -dt)                                    # x = rΔt ≤ 0
        tiny = torch.finfo(params[0].dtype).tiny
        torch._foreach_clamp_max_(rate, -tiny)                            # φ₁(−tiny) = 1 exactly
        factor = torch._foreach_expm1(rate)
        torch._foreach_div_(factor, rate)                                 # φ₁(x)
        torch._foreach_div_(factor, denominator)
        torch._foreach_mul_(factor, -dt)                                  # −ψ
        source = torch._foreach_mul(grads, eta_k)
        if coupling:
            theta = list(params) if metric is None else torch._foreach_mul(params, metric)
            torch._foreach_add_(source, theta, alpha=coupling)
        if metric is not None:
            torch._foreach_div_(source, metric)
        torch._foreach_mul_(factor, source)
        return factor


def group_metric(group, params):
    """The group's metric restricted to ``params`` (those with gradients): None, a float,
    a list of diagonal tensors shaped like ``params``, or a dense (n, n) matrix."""
    metric = group["metric"]
    if metric is None or not isinstance(metric, torch.Tensor):
        return metric
    metric = metric.to(dtype=params[0].dtype, device=params[0].device)
    members = {id(p) for p in params}
    if metric.ndim == 1:
        parts = torch.split(metric, [p.numel() for p in group["params"]])
        return [part.view_as(p) for part, p in zip(parts, group["params"]) if id(p) in members]
    if len(params) == len(group["params"]):
        return metric
    keep, offset = [], 0
    for p in group["params"]:
        if id(p) in members:
            keep.append(torch.arange(offset, offset + p.numel(), device=metric.device))
        offset += p.numel()
    index = torch.cat(keep)
    return metric[index][:, index]
