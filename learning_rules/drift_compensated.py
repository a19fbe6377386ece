"""DriftCompensated: the optimal rule when the parameters drift on their own, f(θ) = Aθ.

The kinetic cost penalises the *control* θ̇ − f(θ), not the motion itself
(Vastola, Gershman & Rajan 2025, App. G). For a local quadratic model the optimal path
satisfies θ̈ = Cθ̇ + K(θ − θ*), C = A + γI − Aᵀ, K = AᵀA − γA + ηkH (G = I), and it goes to
a *biased* fixed point: (ηkH + AᵀA − γA) θ* = ηk(Hθ0 − g), not the loss minimum.

* Weight decay, f = −jθ (App. G.2): A = −jI commutes with H, and per eigen-direction

      r = γ/2 − √((γ/2 + j)² + ηkλ),   θ* = ηkλ/(ηkλ + j(j + γ)) · (minimum),

  stepped with the same stable kernel as :class:`OptimalQuadratic`
  (Δθ = −ψ(λ)(ηk g + j(j + γ)θ), see :mod:`learning_rules.kernels`).
* Any linear drift (``drift_matrix`` A, e.g. a rotation qJ, App. G.1): the dense kernel
  :func:`learning_rules.kernels.dense_drift_displacement` (stable invariant subspace of the
  Euler–Lagrange flow); for small groups.

The optimizer applies the whole optimal displacement of θ over Δt, including the part the
drift produces (as decoupled weight decay does in AdamW): do not also apply the drift in
the training loop. Hyperparameters as :class:`OptimalQuadratic` (``lr`` = Δt, ``eta``,
``k``, ``gamma``, ``metric``, curvature options) plus ``weight_decay`` j ≥ 0 and
``drift_matrix`` A (n × n over the group's flattened parameters; the total drift is
(A − jI)θ). With no drift it is exactly :class:`OptimalQuadratic`.
"""
from __future__ import annotations

import torch

from . import kernels
from .base import check_number, flat
from .optimal_quadratic import OptimalQuadratic


class DriftCompensated(OptimalQuadratic):
    """Optimal step under the drift f(θ) = (A − jI)θ (see module docstring).

    Args: those of :class:`OptimalQuadratic`, plus
        weight_decay: j ≥ 0, the drift −jθ (default 0).
        drift_matrix: None or an (n, n) tensor A over the group's flattened parameters.
    """

    def __init__(self, params, lr=1e-3, *, eta=1.0, k=1.0, gamma=1.0, weight_decay=0.0, drift_matrix=None,
                 curvature="hutchinson", refresh_interval=1, curvature_beta=0.9, hutchinson_samples=1,
                 damping=0.0, negative_curvature="abs", metric=None, maximize=False, foreach=None,
                 fused=None):
        defaults = dict(lr=lr, eta=eta, k=k, gamma=gamma, weight_decay=weight_decay,
                        drift_matrix=drift_matrix,
                        curvature=curvature, refresh_interval=refresh_interval, curvature_beta=curvature_beta,
                        hutchinson_samples=hutchinson_samples, damping=damping,
                        negative_curvature=negative_curvature, metric=metric, maximize=maximize)
        super(OptimalQuadratic, self).__init__(params, defaults, foreach=foreach, fused=fused)

    def check_group(self, group):
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"], 0, None)
        drift = group["drift_matrix"]
        if drift is not None:
            size = sum(p.numel() for p in group["params"])
            if not isinstance(drift, torch.Tensor) or drift.shape != (size, size):
                raise ValueError(f"drift_matrix must be None or a ({size}, {size}) tensor over the group's "
                                 f"flattened parameters, got {getattr(drift, 'shape', type(drift).__name__)}")
            if not torch.isfinite(drift).all():
                raise ValueError("drift_matrix must be finite")
            if size > self.max_exact_size:
                raise ValueError(f"drift_matrix is for groups of at most {self.max_exact_size} parameters")
        super().check_group(group)

    def _drift_rate(self, group):
        return group["weight_decay"]

    def _displacement(self, group, params, grads, curvature, fresh=True, proposal=None):
        drift = group["drift_matrix"]
        if drift is None:
            return super()._displacement(group, params, grads, curvature, fresh, proposal)
        if len(params) != len(group["params"]):
            raise RuntimeError("DriftCompensated with a drift_matrix needs a gradient for every parameter "
                               "of the group (the drift couples them)")
        kind, value = curvature
        gradient = flat(grads)
        hessian = value if kind == "dense" else torch.diag(flat(value))
        metric = group["metric"]
        if isinstance(metric, (int, float)):
            metric = torch.tensor(float(metric), dtype=gradient.dtype)
        identity = torch.eye(gradient.shape[0], dtype=gradient.dtype, device=gradient.device)
        total_drift = drift.to(gradient) - group["weight_decay"] * identity
        return kernels.dense_drift_displacement(
            hessian, gradient, flat(params), total_drift, group["lr"], group["eta"] * group["k"],
            group["gamma"], metric, group["damping"], group["negative_curvature"])
