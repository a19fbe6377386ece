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
from .base import check_choice, check_metric, check_number, flat
from .curvature_optimizer import CurvatureOptimizer


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
        foreach, fused: torch's meaning (:mod:`learning_rules.base`; no fused kernel).
    """

    def __init__(self, params, lr=1e-3, *, eta=1.0, k=1.0, gamma=1.0, curvature="hutchinson",
                 refresh_interval=1, curvature_beta=0.9, hutchinson_samples=1, damping=0.0,
                 negative_curvature="abs", metric=None, maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, eta=eta, k=k, gamma=gamma, curvature=curvature,
                        refresh_interval=refresh_interval, curvature_beta=curvature_beta,
                        hutchinson_samples=hutchinson_samples, damping=damping,
                        negative_curvature=negative_curvature, metric=metric, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

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

    def _propose(self, group, params, grads, graph, proposal):
        # a non-finite gradient or curvature makes the step non-finite; the estimate's own
        # finiteness is checked before it enters the running average (one device flag for all)
        curvature = self._step_curvature(group, params, grads, graph, proposal)
        proposal.move(self._displacement(group, params, grads, curvature, bool(graph), proposal))

    def _displacement(self, group, params, grads, curvature, fresh=True, proposal=None):
        """The flat displacement of the group's parameters (those with gradients)."""
        kind, value = curvature
        metric = group_metric(group, params)
        if isinstance(metric, list):
            metric = flat(metric)
        if kind == "dense" or (isinstance(metric, torch.Tensor) and metric.ndim == 2):
            hessian = value if kind == "dense" else torch.diag(value)
            return kernels.spectral_displacement(
                hessian, flat(grads), flat(params), group["lr"], group["eta"] * group["k"], group["gamma"],
                self._drift_rate(group), metric, group["damping"], group["negative_curvature"])
        return self._diagonal_displacement(group, params, grads, value, metric, fresh, proposal)

    def _diagonal_displacement(self, group, params, grads, diagonal, metric, fresh, proposal):
        """−ψ(λ) ⊙ (ηk g + cGθ)/G elementwise, λ = h/G (flat; the factor −ψ is cached between
        Hutchinson refreshes, so a step without a refresh costs a few elementwise products)."""
        eta_k, decay = group["eta"] * group["k"], self._drift_rate(group)
        coupling = decay * (decay + group["gamma"])
        factor = self._cached_factor(group, params, diagonal, metric, fresh, proposal)
        source = flat(grads).mul_(eta_k)
        if coupling:
            theta = flat(params)
            source.add_(theta if metric is None else theta * metric, alpha=coupling)
        if metric is not None:
            source.div_(metric)
        return source.mul_(factor)

    def _cached_factor(self, group, params, diagonal, metric, fresh, proposal):
        """−ψ of the diagonal. Hutchinson: computed once per refresh and reused until the next,
        keyed by the group's index and its parameters' positions in it (an identity a state_dict
        round trip keeps), the hyperparameters and the metric object. A refresh's factor enters
        the cache through ``proposal`` (masked like the average it comes from: a skipped refresh
        keeps the factor of the stored average)."""
        key = cached = None
        if group["curvature"] == "hutchinson":
            index = next(i for i, g in enumerate(self.param_groups) if g is group)
            positions = tuple(i for i, p in enumerate(group["params"]) if any(p is q for q in params))
            key = (index, positions, group["lr"], group["eta"], group["k"], group["gamma"], group["damping"],
                   group["negative_curvature"], self._drift_rate(group), diagonal.dtype, diagonal.numel())
            cached = self._factors.get(index)
            if cached is not None and (cached[0] != key or cached[1] is not group["metric"]):
                cached = None
            if cached is not None and not fresh:
                return cached[2]
        curvature = diagonal if metric is None else diagonal / metric
        curvature = kernels.effective_curvature(curvature, group["damping"], group["negative_curvature"])
        factor = kernels.step_factor(curvature, group["lr"], group["eta"] * group["k"], group["gamma"],
                                     self._drift_rate(group)).neg_()
        if cached is not None:                  # a refresh: the cached factor follows the average
            proposal.store([cached[2]], [factor])
        elif key is not None and not fresh:     # from the stored average: cache it
            self._factors[key[0]] = (key, group["metric"], factor.clone())
        return factor

    @property
    def _factors(self):
        # step factors cached per group between curvature refreshes: derived data, not state
        if "_factor_cache" not in self.__dict__:
            self._factor_cache = {}
        return self._factor_cache

    def load_state_dict(self, state_dict):
        self._factors.clear()
        super().load_state_dict(state_dict)


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
        return [part.view_as(p) for part, p in zip(parts, group["params"], strict=False) if id(p) in members]
    if len(params) == len(group["params"]):
        return metric
    keep, offset = [], 0
    for p in group["params"]:
        if id(p) in members:
            keep.append(torch.arange(offset, offset + p.numel(), device=metric.device))
        offset += p.numel()
    index = torch.cat(keep)
    return metric[index][:, index]
