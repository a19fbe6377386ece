"""The rule registry of ``lossnav train``: RULE name → optimizer factory with its default ``lr``.

Each factory is ``factory(params, lr)`` → a ``torch.optim.Optimizer`` that accepts
``step(closure)``; what ``lr`` means differs by rule (docs/learning_rules.md: Δt for the
optimal rules, √(ηk)Δt for Ballistic, ηkΔt/γ for natural gradient and SGD). The other
hyperparameters are fixed here (docs/training.md says why). Another rule is one call:

    register_rule("belief_adam", lambda params, lr: BeliefAdam(params, lr=lr), default_lr=1e-3)

An installed package adds rules through the entry-point group ``lossnav.rules``
(:data:`RULE_GROUP`), read when this module is imported::

    [project.entry-points."lossnav.rules"]
    heavy_ball = "my_package.optim:heavy_ball"     # def heavy_ball(params, lr=0.05): ...

The value is a factory ``(params, lr=...)`` → ``torch.optim.Optimizer`` (a function or an
Optimizer subclass); its ``lr`` default is the rule's default. An entry point that fails to
import, is not callable, has no numeric ``lr`` default, or takes a built-in's name is
skipped with one :class:`problems.PluginWarning` line; the built-ins keep working.
``lossnav train --plugin FILE.py:factory`` registers a script's factory the same way.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch

from learning_rules import (
    Ballistic,
    BeliefAdam,
    NaturalGradient,
    OptimalQuadratic,
    RecedingHorizon,
    WeightUncertainty,
)
from problems import registry


@dataclass(frozen=True)
class Rule:
    name: str
    factory: Callable
    default_lr: float
    description: str = ""


RULES: dict = {}


def register_rule(name: str, factory, default_lr: float, description: str = "") -> None:
    """Add (or replace) a rule: ``factory(params, lr)`` → optimizer."""
    RULES[name] = Rule(name, factory, float(default_lr), description)


RULE_GROUP = "lossnav.rules"


def register_plugin_rule(name: str, factory, origin: str = "") -> None:
    """Register a plug-in's factory ``(params, lr=...)`` as rule ``name``; ValueError if the
    name is taken by another factory, the factory is not callable or has no numeric ``lr``
    default (that default becomes the rule's)."""
    if not callable(factory):
        raise ValueError(f"rule {name!r}: {factory!r} is not callable; a rule is a factory "
                         "(params, lr=...) -> torch.optim.Optimizer")
    existing = RULES.get(name)
    if existing is not None and existing.factory is not factory:
        raise ValueError(f"rule name {name!r} is taken ({existing.description or 'registered earlier'}); "
                         "register the factory under another name")
    try:
        default = inspect.signature(factory).parameters["lr"].default
    except (KeyError, TypeError, ValueError):
        default = inspect.Parameter.empty
    if isinstance(default, bool) or not isinstance(default, (int, float)) or not default > 0:
        raise ValueError(f"rule {name!r}: the factory needs an lr parameter with a positive numeric "
                         "default, e.g. def factory(params, lr=0.01)")
    summary = (inspect.getdoc(factory) or "").strip().split("\n")[0]
    description = " ".join(part for part in (summary, f"({origin})" if origin else "") if part)
    register_rule(name, factory, default, description)


def _discover_rules() -> None:
    for entry_point, factory in registry.load_entry_points(RULE_GROUP):
        try:
            register_plugin_rule(entry_point.name, factory,
                                 origin=f"entry point {RULE_GROUP}: {entry_point.value}")
        except ValueError as exc:
            registry.warn(f"skipped plug-in {entry_point.name} = {entry_point.value} ({RULE_GROUP}): {exc}")


def make_optimizer(name: str, params, lr=None):
    """Optimizer ``name`` over ``params`` (``lr`` None: the rule's default); ValueError on an
    unknown name, listing the valid ones."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; valid: {', '.join(RULES)}")
    rule = RULES[name]
    return rule.factory(params, rule.default_lr if lr is None else lr)


# MPC: re-plan every 40 steps on a 4-dimensional subspace (g, last displacement, 2 Lanczos
# directions) in the App. B metric G = √v̂ + ε, trust radius 0.1 in that metric, Hutchinson
# diagonal for the complement, γ = 1 (overdamped for flat directions: lr/γ per unit of G⁻¹g).
# K = 40 keeps the HVPs of a re-plan at ≈ 0.3 gradient evaluations per step.
MPC_OPTIONS = dict(gamma=1.0, metric="gradient_squares", metric_beta=0.999, subspace_dim=4,
                   replan_interval=40, trust_radius=0.1, curvature="hutchinson", curvature_beta=0.9)
register_rule("mpc", lambda params, lr: RecedingHorizon(params, lr=lr, **MPC_OPTIONS), 5e-3,
              "learning_rules.RecedingHorizon (lr = Δt)")

# OptimalQuadratic in the Euclidean metric is scale-sensitive: γ = 1 and damping 1 keep flat
# directions at an SGD step Δt/γ (Δt = 1 diverged on the CNN).
register_rule("optimal_quadratic", lambda params, lr: OptimalQuadratic(
    params, lr=lr, gamma=1.0, damping=1.0, curvature="hutchinson", refresh_interval=10,
    curvature_beta=0.9), 0.3, "learning_rules.OptimalQuadratic, Hutchinson diagonal (lr = Δt)")
register_rule("ballistic", lambda params, lr: Ballistic(params, lr=lr, beta=0.999), 1e-3,
              "learning_rules.Ballistic, App. B proxy (lr = √(ηk)Δt)")
register_rule("natural_gradient", lambda params, lr: NaturalGradient(
    params, lr=lr, metric="fisher", beta=0.999, damping=1e-3), 1e-4,
    "learning_rules.NaturalGradient, diagonal empirical Fisher (lr = ηkΔt/γ)")
register_rule("sgd", lambda params, lr: torch.optim.SGD(params, lr=lr), 0.1, "torch.optim.SGD")
register_rule("adam", lambda params, lr: torch.optim.Adam(params, lr=lr), 1e-3, "torch.optim.Adam")
# AdamW with the grokking setting's decoupled weight decay (Power et al. 2022; β2 = 0.98 as in
# Nanda et al. 2023's modular-addition runs): λ = 1 with lr 1e-3, i.e. θ shrinks by lr·λ per step.
register_rule("adamw", lambda params, lr: torch.optim.AdamW(
    params, lr=lr, betas=(0.9, 0.98), weight_decay=1.0), 1e-3,
    "torch.optim.AdamW, weight decay 1, β = (0.9, 0.98) (the grokking baseline)")
# mpcw: mpc with AdamW's decoupled weight decay (the drift −jθ of App. G.2 applied outside the
# plan), j = 0.2: at the default Δt = 5e-3 θ shrinks by Δt·j = 1e-3 per step, as adamw's lr·λ at
# its default (and at any common multiple of the two defaults: the tuning scales both alike).
register_rule("mpcw", lambda params, lr: RecedingHorizon(
    params, lr=lr, weight_decay=0.2, **MPC_OPTIONS), 5e-3,
    "learning_rules.RecedingHorizon with decoupled weight decay j = 0.2 (lr = Δt)")

# BeliefAdam (App. H, docs/belief_adam.md): lr = Δt; ηk = 1, filter rates K1 = 100, K2 = 1 per
# unit time (β1 = 0.7, β2 = 0.997 at Δt = 3e-3), discount γ = 1e-3 (Adam's ε up to a factor 2:
# caps the step at ηk·m/γ in flat, quiet directions), the paper's centred variance. Sweep on
# digits-MLP (3 seeds, 5 epochs): Δt 2e-3/3e-3/5e-3 × γ 0/1e-3/3e-3 × K1 33/100 × centred or not
# all within 93.8-96.4 % (Adam 1e-3, 2 seeds: 94.0 %); γ ≥ 1e-2 slows training (at Δt = 1e-3:
# 89 % at γ = 1e-2, 27 % at 0.1).
register_rule("belief_adam", lambda params, lr: BeliefAdam(
    params, lr=lr, eta=1.0, k=1.0, gamma=1e-3, mean_rate=100.0, variance_rate=1.0, centered=True), 3e-3,
    "learning_rules.BeliefAdam, belief filters + θ-policy (lr = Δt)")
# WeightUncertainty (App. I, docs/weight_uncertainty.md): lr = Δt = 1, η = γ = 1 (ρ = η/γ = 1),
# k = 1, entropy weight β = 0.01, v0 = 0.1, prior cap v ≤ 0.3: the learning rate of weight i is
# Δtρk·v_i ∈ (0, 0.3], resting at Δtρβ/h_i below the cap (h_i > β/v_max = 0.03), and v relaxes at
# rate ρβ = 0.01 per step. Only Δtρ, β, k·v0 and k·v_max matter (u = kv obeys u̇ = ρu(β − hu)).
# Hutchinson diagonal refreshed every 10 steps. Sweeps on digits-MLP (2-3 seeds, 5 epochs):
# Δt 0.1/0.3/0.5 × k 1/3 × v0 0.3/1 × β 0.1/1 with cap 1 gave 92.9-94.7 % at Δtρk = 0.3-0.5,
# but every variance sat at the cap (plain SGD at 0.3); Δt = 1, cap 0.3, β 1e-3 … 0.1, v0
# 0.03/0.1: 76-94 %, the cap binding for 0 % of the weights at β ≤ 3e-3 (v stays near v0: SGD
# at Δt·v0), 86 % at β = 0.01 (90.4/93.1 %), ≥ 99 % at β ≥ 0.03. β = 0.01 is the largest β at
# which the curvature still sets the rates (SGD 0.1: 89.6 %, Adam 1e-3: 94.0 %).
register_rule("weight_uncertainty", lambda params, lr: WeightUncertainty(
    params, lr=lr, eta=1.0, gamma=1.0, k=1.0, beta=0.01, init_variance=0.1, max_variance=0.3,
    curvature="hutchinson", refresh_interval=10), 1.0,
    "learning_rules.WeightUncertainty, Hutchinson diagonal (lr = Δt, ρ = k = 1, β = 0.01, v ∈ (0, 0.3])")

from .continual import ResetAdam  # noqa: E402  (continual imports the loop, not this module)

register_rule("adam_reset", lambda params, lr: ResetAdam(params, lr=lr), 1e-3,
              "torch.optim.Adam with its state cleared at every task boundary (--tasks); Adam otherwise")

_discover_rules()     # after the built-ins: a plug-in cannot replace one
