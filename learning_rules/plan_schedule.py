"""When :class:`learning_rules.RecedingHorizon` must measure a new local model: the adaptive
re-plan schedule (``replan_tolerance``).

A measured model costs a gradient with graph and m + 1 Hessian-vector products (the bulk of an
MPC step's excess over Adam, ``benchmarks/bench_mpc_step.py``). It is worth measuring again only
where the old one has stopped predicting the loss. So, over each plan interval of K steps, the
optimizer compares the loss change the model predicted with the one it observed:

    m(Δ) = ĝᵀΔ̃ + ½ãᵀTã + ½c̃ᵀD̃c̃,   Δ̃ = Δθ / s,  ã = QΔ̃,  c̃ = Δ̃ − Qᵀã

(the quadratic model of Vastola, Gershman & Rajan 2025, App. E, in the whitened coordinates of
the metric, App. F; ĝ, T, D̃ as measured, negative curvature included: a prediction, not the
plan's surrogate). Minibatch losses differ by their noise even at one θ, so single losses are
not compared: the observed change is the mean loss over the last w = max(1, K // 4) steps of the
interval minus the mean over its first w, and the predicted change is m at the middle of the
late window minus m at the middle of the early one. The relative error

    e = |observed − predicted| / |predicted|

(NaN or ∞ when anything is not finite, or the model predicted no change) decides at the end of
the interval: e ≤ ``replan_tolerance`` *reuses* the model, at most ``max_model_reuse`` times in a
row: the plan is solved again from the current θ on the old T, D̃ and Q with the fresh gradient
(b = Q(s ⊙ g): free, the step computes g anyway), i.e. a re-plan without Hessian-vector
products or graph; otherwise (or with ``replan_tolerance=None``, the default: every K steps, as
before) the model is measured. This is the trust-region ratio test (Nocedal & Wright 2006,
§4.1: actual against predicted reduction) used to schedule curvature measurements, not to size
the step (the plan's trust region does that).

The bookkeeping lives in the group's head state: window sums of the losses (device scalars: no
host read between re-plans), the two predictions, and the model (ĝ, T, D̃) kept from the last
measurement; one read of three scalars at the end of an interval decides.
"""
from __future__ import annotations

import math

import torch

MODEL_KEYS = ("model_gradient", "model_curvature", "model_diagonal")
WINDOW_KEYS = ("loss_early", "loss_late", "predicted_early", "predicted_late")


def window(interval):
    """w = max(1, K // 4): the steps averaged at each end of a plan interval of K steps."""
    return max(1, interval // 4)


def keep_model(head, white_gradient, T, diagonal):
    """Store the measured model (ĝ = s ⊙ g, T (m, m) on the device, D̃ = s² diag(H)) for the
    predictions of the next intervals; count it as fresh (no reuse yet)."""
    head["model_gradient"] = white_gradient.clone()
    head["model_curvature"] = T
    head["model_diagonal"] = diagonal.clone()
    head["model_reuses"] = 0
    start_interval(head, white_gradient)


def start_interval(head, like):
    """Zero the window sums and predictions for a new plan interval."""
    for key in WINDOW_KEYS:
        head[key] = like.new_zeros(())


def predicted_change(head, displacement, scale):
    """m(Δθ) of the module docstring for the displacement Δθ since the plan (device scalar)."""
    white = displacement if scale is None else displacement / scale
    basis = head["basis"]
    subspace = basis @ white
    complement = white - basis.mT @ subspace
    return (head["model_gradient"] @ white + 0.5 * subspace @ (head["model_curvature"] @ subspace)
            + 0.5 * (head["model_diagonal"] * complement) @ complement)


def observe(head, group, index, loss, displacement):
    """Fold the loss ℓ_j at θ_j (``index`` j of the plan, ``displacement`` θ_j − θ_plan) into
    the interval's windows; at each window's middle evaluate the model's prediction there."""
    interval, width = group["replan_interval"], window(group["replan_interval"])
    loss = torch.as_tensor(loss, dtype=displacement.dtype, device=displacement.device).detach()
    if group["maximize"]:
        loss = -loss
    if index < width:
        head["loss_early"] = head["loss_early"] + loss
    if index >= interval - width:
        head["loss_late"] = head["loss_late"] + loss
    if index == width // 2:
        head["predicted_early"] = predicted_change(head, displacement, head.get("scale"))
    if index == interval - width + width // 2:
        head["predicted_late"] = predicted_change(head, displacement, head.get("scale"))


def prediction_error(head, group):
    """e = |observed − predicted| / |predicted| of the last interval (a float; one host read)."""
    width = window(group["replan_interval"])
    values = torch.stack([head[key] for key in WINDOW_KEYS]).double().cpu().tolist()
    early, late, predicted_early, predicted_late = values
    observed, predicted = (late - early) / width, predicted_late - predicted_early
    error = abs(observed - predicted) / abs(predicted) if predicted else math.inf
    return error if math.isfinite(error) else math.inf


def reuse_allowed(head, group):
    """Whether the model of the last measurement may plan the next interval too (module
    docstring); decided once per interval, on its last step, and remembered in the head."""
    if group["replan_tolerance"] is None or "model_gradient" not in head:
        return False
    if head.get("model_reuses", 0) >= group["max_model_reuse"]:
        return False
    decided = head.get("reuse_decision")
    if decided is None or decided[0] != head["plan_serial"]:
        error = prediction_error(head, group)
        head["last_prediction_error"] = error
        decided = (head["plan_serial"], error <= group["replan_tolerance"])
        head["reuse_decision"] = decided
    return decided[1]
