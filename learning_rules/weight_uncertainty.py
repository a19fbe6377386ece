"""WeightUncertainty: the overdamped optimal rule for Gaussian weights (Vastola, Gershman &
Rajan 2025, App. I.3, Eq. 148; derivation in docs/weight_uncertainty.md).

Each weight is N(μ, v); ``param`` holds μ and ``state[p]["variance"]`` holds v. The optimal
paths of the App. I problem (Fisher-metric kinetic cost (1/η)·KL rate, entropy bonus β,
k·expected loss, discount γ) follow, in the overdamped limit γ → ∞ at fixed ρ = η/γ,

    μ̇ = −ρk v ⊙ ∇L(μ),        v̇ = ρ v ⊙ (β − k h v),      h = diag ∇²L(μ)

(the variance scales the effective learning rate; it rests at v* = β/(kh), Eq. 149). One
step of duration Δt = ``lr``:

    μ ← μ − Δt ρk v ⊙ φ(Δt ρk v h⁺) ⊙ g,      φ(x) = (1 − e^{−x})/x
    v ← v e^{ρβΔt} / (1 + (k h⁺ v/β)(e^{ρβΔt} − 1))

both exact over the step for a diagonal quadratic with v and h frozen: the v-update is
the solution of the logistic equation (positive for every Δt), the μ-update the
exponential-Euler step, which never overshoots the diagonal model's minimum however large
v grows (an explicit Euler step would be unstable once Δt ρ k v h > 2). Since v is
frozen during the μ-step the rule converges to the overdamped flow with order 1 in Δt,
and the flow to the optimal path as γ → ∞
(problems/weight_uncertainty.py: ``overdamped_path`` and ``solve_switch``). After a task
switch to a flatter basin h drops and v relaxes up to the new β/(kh): the learning rate
grows, which is the optimal form of weight resetting.

Curvature h: "hutchinson" (default: diagonal from Hessian-vector products inside
``step``), "exact" (diagonal of the dense Hessian of small groups) or a callable
``(param, grad) -> tensor`` shaped like ``param``. Negative curvature is treated as flat
(h⁺ = max(h, 0): the expected loss then rewards variance without bound, and the variance
grows as e^{ρβt}); ``max_variance`` caps it. Variances are kept in
[``min_variance``, ``max_variance``]; every clamped entry is counted in
``state[p]["variance_floored"]`` / ``["variance_capped"]`` (:attr:`variance_clamps`), and a
non-finite gradient, curvature or update skips the step (counted in ``skipped_steps``):
a variance never becomes negative or NaN.
"""
from __future__ import annotations

import math

import torch

from .base import check_number, flat
from .curvature_optimizer import CurvatureOptimizer


class WeightUncertainty(CurvatureOptimizer):
    """Per-weight mean and variance updated by the overdamped optimal rule (module docstring).

    Args:
        params: parameters (the means μ) or parameter groups.
        lr: Δt > 0, the duration of one step (default 1e-2).
        eta: step-cost scale η > 0 (default 1).
        k: loss weight k > 0 (default 1).
        gamma: discount rate γ > 0 (default 1); only ρ = η/γ and k, β enter the rule.
        beta: entropy weight β > 0 (default 1, the paper's value).
        init_variance: initial variance v0 > 0 of every weight (default 1e-2).
        min_variance, max_variance: 0 < min ≤ max ≤ ∞ (default 1e-12, ∞).
        curvature: "hutchinson" (default), "exact" or a callable ``(param, grad) -> tensor``.
        refresh_interval, curvature_beta, hutchinson_samples: Hutchinson options (default
            1, 0.9, 1); see :class:`learning_rules.curvature_optimizer.CurvatureOptimizer`.
        maximize: maximize the objective instead (default False).
        foreach, fused: torch's meaning (:mod:`learning_rules.base`; no fused kernel).
    """

    param_shaped_state = ("variance", "hessian_diag")

    def __init__(self, params, lr=1e-2, *, eta=1.0, k=1.0, gamma=1.0, beta=1.0, init_variance=1e-2,
                 min_variance=1e-12, max_variance=math.inf, curvature="hutchinson", refresh_interval=1,
                 curvature_beta=0.9, hutchinson_samples=1, maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, eta=eta, k=k, gamma=gamma, beta=beta, init_variance=init_variance,
                        min_variance=min_variance, max_variance=max_variance, curvature=curvature,
                        refresh_interval=refresh_interval, curvature_beta=curvature_beta,
                        hutchinson_samples=hutchinson_samples, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def check_group(self, group):
        group["lr"] = check_number("lr", group["lr"], 0, None, low_open=True)
        super().check_group(group)
        for key in ("eta", "k", "gamma", "beta", "init_variance", "min_variance"):
            group[key] = check_number(key, group[key], 0, None, low_open=True)
        maximum = group["max_variance"]
        if not (isinstance(maximum, (int, float)) and not isinstance(maximum, bool)
                and maximum >= group["min_variance"] and not math.isnan(maximum)):
            raise ValueError(f"max_variance must be a number in [min_variance, ∞], got {maximum!r}")
        group["max_variance"] = float(maximum)
        if not group["min_variance"] <= group["init_variance"] <= group["max_variance"]:
            raise ValueError(f"init_variance must lie in [min_variance, max_variance] = "
                             f"[{group['min_variance']:g}, {group['max_variance']:g}], "
                             f"got {group['init_variance']:g}")

    def variances(self, params):
        """The variance tensors of ``params`` (created at ``init_variance`` on first use; the
        clamp counts with them, 0-dim int64 on the parameter's device)."""
        out = []
        group_of = {id(p): group for group in self.param_groups for p in group["params"]}
        for param in params:
            state = self.state[param]
            if "variance" not in state:
                state["variance"] = torch.full_like(param, group_of[id(param)]["init_variance"],
                                                    memory_format=torch.preserve_format)
            for key in ("variance_floored", "variance_capped"):       # numbers in the per-parameter layout
                if not isinstance(state.get(key), torch.Tensor):
                    state[key] = torch.full((), int(state.get(key, 0)), dtype=torch.int64,
                                            device=param.device)
            out.append(state["variance"])
        return out

    @property
    def variance_clamps(self) -> dict:
        """Total entries clamped to the floor and to the cap, over all parameters and steps (a host read)."""
        states = [s for s in self.state.values() if "variance" in s]
        return {"floored": sum(int(s["variance_floored"]) for s in states),
                "capped": sum(int(s["variance_capped"]) for s in states)}

    def _propose(self, group, params, grads, graph, proposal):
        """μ and v over one step (module docstring), proposed with the clamp counts: a non-finite
        gradient, curvature or update skips all of it (one device flag)."""
        kind, value = self._step_curvature(group, params, grads, graph, proposal)
        diagonal = torch.diagonal(value) if kind == "dense" else value
        variances = self.variances(params)
        v = flat(variances)
        rho, k, beta, dt = group["eta"] / group["gamma"], group["k"], group["beta"], group["lr"]
        positive = diagonal.clamp(min=0)
        exponent = (dt * rho * k) * v * positive                    # x = Δt ρ k v h⁺
        damping = torch.where(exponent > 1e-12, -torch.expm1(-exponent) / exponent.clamp(min=1e-12),
                              torch.ones_like(exponent))            # φ(x) = (1 − e^{−x})/x
        proposal.move(flat(grads).mul_(v).mul_(damping).mul_(-dt * rho * k))
        growth = math.expm1(rho * beta * dt)
        new_v = v * (1 + growth) / (1 + (k / beta) * positive * v * growth)
        low, high = group["min_variance"], group["max_variance"]
        sizes = [p.numel() for p in params]
        floored, capped = torch.split(new_v < low, sizes), torch.split(new_v > high, sizes)
        clamped = torch.split(new_v.clamp(min=low, max=high), sizes)
        for param, variance, part, low_part, high_part in zip(params, variances, clamped, floored, capped,
                                                              strict=False):
            state = self.state[param]
            proposal.store([variance, state["variance_floored"], state["variance_capped"]],
                           [part.view_as(param), state["variance_floored"] + low_part.sum(),
                            state["variance_capped"] + high_part.sum()])


__all__ = ["WeightUncertainty"]
