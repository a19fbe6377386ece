"""BeliefAdam: the belief-filter learning rule of App. H (Vastola, Gershman & Rajan 2025,
Eqs. 141–142), discretised; torch.optim.Adam is a special case.

The optimal path of the ``belief_adam`` scenario (problems/belief_adam.py, derivation in
docs/belief_adam.md) simplifies when the time scales separate, belief rates ≪ γ ≪ √(ηkv):
the beliefs are overdamped (m̈ ≪ γṁ), i.e. causal first-order filters of the observed
gradients g, and θ follows the optimal policy of the frozen-belief quadratic
E[L] = m·d + ½v·d² (d = θ − θ̂):

    ṁ = −a1 m + K1 (g − m) − c·2(g − m)(v − (g − m)²) − f1·d
    v̇ = −a2 v + K2 ((g − m)² − v) − f2·d²
    θ̇ = −ηk (m + v d) / (√(γ²/4 + ηkv) + γ/2)

with K_i = ξ_i²/(γσ_i²), a_i = α_i(α_i + γ)/γ, c = K1σ1²/σ2², f1 = K1σ1²k, f2 = K2σ2²k/2
(:meth:`BeliefAdam.from_model` maps the scenario's parameters). One step of Δt = ``lr``
updates the beliefs by explicit Euler with the new gradient, then θ with the new beliefs
(first order in Δt). γ² ≪ ηkv gives θ̇ = −√(ηk)·m/√v (Adam); γ² ≫ ηkv gives
θ̇ = −(ηk/γ)·m (SGD with momentum-averaged gradients).

On a network the belief's model is re-anchored at every step (``anchor="current"``, d = 0),
and the observed g is the minibatch gradient.

With its defaults (lr = Δt = 1e-3, ηk = 1, K1 = 100, K2 = 1, γ = 0, uncentred) BeliefAdam is
Adam(lr=1e-3); the belief model's features are options (or :meth:`BeliefAdam.from_model`).
The discount rate plays the role of Adam's ε: the denominator √(γ²/4 + ηkv) + γ/2 lies
between √(ηk)(√v + γ/(2√(ηk))) and √(ηk)(√v + γ/√(ηk)), so γ ≈ √(ηk)·ε up to a factor 2.

**Relation to torch.optim.Adam.** With ``gamma=0, mean_decay=variance_decay=0,
coupling=0, centered=False, anchor="current", bias_correction=True`` the step is

    m ← (1 − K1Δt) m + K1Δt g,   v ← (1 − K2Δt) v + K2Δt g²,
    θ ← θ − √(ηk)Δt · m̂ / (√v̂ + ε),   m̂ = m/(1 − β1ⁿ), v̂ = v/(1 − β2ⁿ),

i.e. Adam with lr_Adam = √(ηk)Δt, β1 = 1 − K1Δt, β2 = 1 − K2Δt and the same ε
(:meth:`BeliefAdam.adam`). They differ when: γ > 0 (the step saturates at −(ηk/γ)m where
ηkv ≪ γ²: SGD-like in flat, quiet directions, where Adam's m/√v blows up); ``centered``
(the paper's (g − m)², a variance, not Adam's raw second moment g²); prior decay a_i > 0
(shrinkage of the beliefs towards 0); coupling c > 0 (the simplified observation model
couples the mean filter to the variance misfit); a fixed anchor (the belief gradient m + vd
includes the curvature term). Changing ``lr`` changes β1, β2 (they are rates per unit time).

Safety: variances are floored at ``variance_floor`` (≥ 0) after each update; each floored
entry is counted in ``state[p]["variance_floors"]`` (:attr:`BeliefAdam.variance_floors`).
A non-finite gradient or step skips the step (counted, as in every rule of this package:
nothing is written, the beliefs, decay products and floor counts included).
"""
from __future__ import annotations

import math

import torch

from .base import RuleOptimizer, all_finite, check_choice, check_number


class BeliefAdam(RuleOptimizer):
    """Belief filters for the gradient's mean and variance plus the optimal θ-policy.

    Args:
        params: parameters or parameter groups.
        lr: Δt > 0, the duration of one step (default 1e-3).
        eta, k: step-cost scale η > 0 and loss weight k > 0 (default 1, 1).
        gamma: discount rate γ ≥ 0 (default 0: the ballistic, Adam-like policy).
        mean_rate, variance_rate: filter gains K1, K2 > 0 per unit time (defaults 100 and 1:
            Adam's β1 = 0.9, β2 = 0.999 at Δt = 1e-3); K·Δt must be ≤ 1.
        mean_decay, variance_decay: prior decay rates a1, a2 ≥ 0 (default 0).
        coupling: weight c ≥ 0 of the mean filter's variance-misfit term (default 0).
        mean_feedback, variance_feedback: f1, f2 ≥ 0, the k-terms of the filters; they act
            only with a fixed anchor (default 0).
        centered: variance of g − m (True, the paper's) or raw g² (False, Adam's; default:
            g² ≥ m² bounds |m̂|/√v̂, the centred variance does not, so m/√v can be large where
            the gradient is consistent; use gamma > 0 to cap the step at ηk·m/γ then).
        anchor: "current" (d = 0, default) or "initial" (θ̂ = the parameters' first values).
        bias_correction: divide the beliefs by 1 − Π(1 − (K + a)Δt) (default True; Adam's).
        eps: ε ≥ 0 added to √v̂ (scaled by √(ηk)), as in Adam (default 1e-8).
        variance_floor: v is kept ≥ this (default 0); floored entries are counted.
        maximize: default False.
        foreach, fused: torch's meaning (:mod:`learning_rules.base`; no fused kernel; the belief
            filters run tensor by tensor, ``foreach`` applies to the masked commit).
    """

    param_shaped_state = ("mean", "variance", "anchor")

    def __init__(self, params, lr=1e-3, *, eta=1.0, k=1.0, gamma=0.0, mean_rate=100.0, variance_rate=1.0,
                 mean_decay=0.0, variance_decay=0.0, coupling=0.0, mean_feedback=0.0, variance_feedback=0.0,
                 centered=False, anchor="current", bias_correction=True, eps=1e-8, variance_floor=0.0,
                 maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, eta=eta, k=k, gamma=gamma, mean_rate=mean_rate, variance_rate=variance_rate,
                        mean_decay=mean_decay, variance_decay=variance_decay, coupling=coupling,
                        mean_feedback=mean_feedback, variance_feedback=variance_feedback, centered=centered,
                        anchor=anchor, bias_correction=bias_correction, eps=eps,
                        variance_floor=variance_floor, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    @classmethod
    def adam(cls, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, dt=None, maximize=False):
        """The settings under which BeliefAdam is torch.optim.Adam(lr, betas, eps): Δt = ``dt``
        (default lr), ηk = (lr/Δt)², K_i = (1 − β_i)/Δt, γ = 0, uncentred, no decay/coupling."""
        dt = lr if dt is None else dt
        beta1 = check_number("betas[0]", betas[0], 0, 1, high_open=True)
        beta2 = check_number("betas[1]", betas[1], 0, 1, high_open=True)
        return cls(params, dt, eta=(lr / dt) ** 2, k=1.0, gamma=0.0, mean_rate=(1 - beta1) / dt,
                   variance_rate=(1 - beta2) / dt, centered=False, bias_correction=True, eps=eps,
                   maximize=maximize)

    @staticmethod
    def model_coefficients(*, sigma1, sigma2, xi1, xi2, alpha1, alpha2, eta, k, gamma) -> dict:
        """Hyperparameters of the overdamped-belief flow of the App. H.2 model (module docstring):
        K_i = ξ_i²/(γσ_i²), a_i = α_i(α_i + γ)/γ, c = K1σ1²/σ2², f1 = K1σ1²k, f2 = K2σ2²k/2; γ > 0.

        (The frozen-coefficient stable root, 1/γ → 1/(γ/2 + √(γ²/4 + S_i)), which is the
        Kalman–Bucy gain ξ/σ at γ = 0, fits transients from the initial beliefs but lags a
        moving stream too much: docs/belief_adam.md.)"""
        for name, value in (("sigma1", sigma1), ("sigma2", sigma2), ("xi1", xi1), ("xi2", xi2),
                            ("eta", eta), ("k", k), ("gamma", gamma)):
            check_number(name, value, 0, None, low_open=True)
        for name, value in (("alpha1", alpha1), ("alpha2", alpha2)):
            check_number(name, value, 0, None)
        mean_rate, variance_rate = xi1 ** 2 / (gamma * sigma1 ** 2), xi2 ** 2 / (gamma * sigma2 ** 2)
        return dict(eta=eta, k=k, gamma=gamma, mean_rate=mean_rate, variance_rate=variance_rate,
                    mean_decay=alpha1 * (alpha1 + gamma) / gamma,
                    variance_decay=alpha2 * (alpha2 + gamma) / gamma,
                    coupling=mean_rate * sigma1 ** 2 / sigma2 ** 2, mean_feedback=mean_rate * sigma1 ** 2 * k,
                    variance_feedback=variance_rate * sigma2 ** 2 * k / 2)

    @classmethod
    def from_model(cls, params, lr, *, sigma1, sigma2, xi1, xi2, alpha1, alpha2, eta, k, gamma,
                   anchor="initial", variance_floor=0.0):
        """The belief filters and θ-policy of the App. H.2 model (:meth:`model_coefficients`, γ > 0)."""
        coefficients = cls.model_coefficients(sigma1=sigma1, sigma2=sigma2, xi1=xi1, xi2=xi2, alpha1=alpha1,
                                              alpha2=alpha2, eta=eta, k=k, gamma=gamma)
        return cls(params, lr, **coefficients, centered=True, anchor=anchor, bias_correction=False, eps=0.0,
                   variance_floor=variance_floor)

    def check_group(self, group):
        group["lr"] = check_number("lr", group["lr"], 0, None, low_open=True)
        super().check_group(group)
        group["eta"] = check_number("eta", group["eta"], 0, None, low_open=True)
        group["k"] = check_number("k", group["k"], 0, None, low_open=True)
        group["gamma"] = check_number("gamma", group["gamma"], 0, None)
        for key in ("mean_rate", "variance_rate"):
            group[key] = check_number(key, group[key], 0, None, low_open=True)
        for key in ("mean_decay", "variance_decay", "coupling", "mean_feedback", "variance_feedback",
                    "eps", "variance_floor"):
            group[key] = check_number(key, group[key], 0, None)
        for key in ("mean", "variance"):
            gain = (group[f"{key}_rate"] + group[f"{key}_decay"]) * group["lr"]
            if gain > 1:
                raise ValueError(f"({key}_rate + {key}_decay)·lr must be ≤ 1 (the filter's explicit Euler "
                                 f"step overshoots otherwise), got {gain:.3g}; use a smaller lr")
        group["centered"] = bool(group["centered"])
        group["bias_correction"] = bool(group["bias_correction"])
        check_choice("anchor", group["anchor"], ("current", "initial"))

    def set_beliefs(self, param, mean, variance):
        """Start ``param``'s beliefs at (mean, variance) (tensors or numbers; variance ≥ 0)."""
        mean = torch.as_tensor(mean, dtype=param.dtype, device=param.device).expand_as(param).clone()
        variance = torch.as_tensor(variance, dtype=param.dtype, device=param.device).expand_as(param).clone()
        if not (all_finite(mean) and all_finite(variance)) or bool((variance < 0).any()):
            raise ValueError("beliefs must be finite with variance ≥ 0")
        self._state(param)
        self.state[param].update(mean=mean, variance=variance)

    @property
    def variance_floors(self) -> int:
        """Variance entries floored so far (summed over parameters; a host read)."""
        return sum(int(s.get("variance_floors", 0)) for s in self.state.values())

    def _state(self, param):
        """The beliefs of ``param``; the decay products Π(1 − (K + a)Δt) (for the bias correction)
        and the floor count are 0-dim tensors on its device (numbers in the per-parameter layout
        are converted when first used)."""
        state = self.state[param]
        if "mean" not in state:
            state["mean"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["variance"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["anchor"] = param.detach().clone()
        for key, dtype in (("mean_decay_product", param.dtype), ("variance_decay_product", param.dtype),
                           ("variance_floors", torch.int64)):
            value = state.get(key, 0 if key == "variance_floors" else 1.0)
            if not isinstance(value, torch.Tensor):
                state[key] = torch.full((), value, dtype=dtype, device=param.device)
        return state

    def _propose(self, group, params, grads, graph, proposal):
        """The filters' and θ's explicit Euler step (module docstring), proposed as a whole: a
        non-finite g makes an update or a belief non-finite, and one flag skips all of it."""
        dt, eta_k, gamma = group["lr"], group["eta"] * group["k"], group["gamma"]
        updates = []
        for param, grad in zip(params, grads, strict=False):
            state = self._state(param)
            m, v = state["mean"], state["variance"]
            d = param - state["anchor"] if group["anchor"] == "initial" else None
            error = grad - m
            square = error * error if group["centered"] else grad * grad
            dm = group["mean_rate"] * error - group["mean_decay"] * m
            if group["coupling"]:
                dm = dm - group["coupling"] * 2 * error * (v - square)
            dv = group["variance_rate"] * (square - v) - group["variance_decay"] * v
            if d is not None:
                dm = dm - group["mean_feedback"] * d
                dv = dv - group["variance_feedback"] * d * d
            new_m, new_v = m + dt * dm, v + dt * dv
            floored = new_v < group["variance_floor"]
            new_v = torch.where(floored, torch.full_like(new_v, group["variance_floor"]), new_v)
            mean_product = state["mean_decay_product"] * (1 - dt * (group["mean_rate"] + group["mean_decay"]))
            variance_product = state["variance_decay_product"] * (1 - dt * (group["variance_rate"]
                                                                            + group["variance_decay"]))
            m_hat, v_hat = new_m, new_v
            if group["bias_correction"]:      # 1 − Π is 0 only before any decay: no correction then
                m_hat = new_m / torch.where(mean_product < 1, 1 - mean_product, 1.0)
                v_hat = new_v / torch.where(variance_product < 1, 1 - variance_product, 1.0)
            gradient = m_hat if d is None else m_hat + v_hat * d
            offset = gamma / 2 + math.sqrt(eta_k) * group["eps"]
            denominator = torch.sqrt(gamma ** 2 / 4 + eta_k * v_hat) + offset
            proposal.store([m, v, state["mean_decay_product"], state["variance_decay_product"],
                            state["variance_floors"]],
                           [new_m, new_v, mean_product, variance_product,
                            state["variance_floors"] + floored.sum()])
            updates.append(gradient.mul(-dt * eta_k).div_(denominator))
        proposal.move(updates)


__all__ = ["BeliefAdam"]
