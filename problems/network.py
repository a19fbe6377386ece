"""A network's training loss as a learning scenario: a tanh MLP on scikit-learn's digits (issue 25).

    L(θ) = (1/N) Σ_n CE(softmax(W₂ tanh(W₁x_n + b₁) + b₂), y_n) + (λ/2)|θ|²,   f = 0,   G = I

θ = (W₁ (hidden × 64), b₁, W₂ (10 × hidden), b₂) flattened in that order, D = 75·hidden + 10
(hidden = 72: D = 5,410). x_n are the 8 × 8 digit images of ``sklearn.datasets.load_digits``
scaled to [0, 1] (all 1,797, or a seeded subset of ``samples``). The weight decay λ > 0 makes
L coercive, so a minimum exists and the infinite-horizon optimal path of the OCP of Vastola,
Gershman & Rajan (2025, Eq. 2; design notes §1) comes to rest at a stationary point of L.

No closed form exists; the reference is the matrix-free solve (``ocp.solve`` on the
:class:`problems.torch_loss.TorchLoss` of the loss: Newton–CG with Hessian-vector products, no
D × D matrix), checked by its doubled mesh and its Euler–Lagrange residual. θ0 is PyTorch's
``nn.Linear`` initialisation U(±1/√fan_in), drawn from ``seed``. The fixed point θ* is the
minimum the descent from θ0 reaches (the basin the path descends into). At θ* the Hessian's
smallest eigenvalue is far below λ (5.5e-5 at the defaults: the cross-entropy's negative
curvature nearly cancels the weight decay), so γ ≫ sqrt(ηkλ_min) and the infinite-horizon
reference is the engine's truncated window [0, W], γW = 24 (``ocp.matrix_free.solve``).

Validation: γ = 1 (``validation_gammas``) on the finite horizon H = 10 and the infinite horizon
(``validation_horizons``). ``lossnav validate --all`` leaves this scenario out
(``in_default_validation = False``): at D = 5,410 its reference and the rules' runs take minutes,
where the rest of the catalogue takes seconds; ``lossnav validate digits_mlp`` runs it. A small
network is not a quick check: at D ≤ 1000 (``--set hidden=4``: D = 310) the dense-curvature rules
(ballistic, optimal_quadratic: ``EXACT_CURVATURE_MAX_DIM`` in ``lossnav.validation.rule_runner``)
apply, and their limit flows form the exact D × D Hessian at every DOP853 stage (measured on 2
cores, 2026-12-08: the references take 44 s (H = 10) and 71 s (∞), gradient descent's order study
7.5 s, ballistic's more than 15 minutes with the unchunked Hessian; the chunked one,
``HESSIAN_CHUNK``, costs 16× less per Hessian and was not re-timed in the whole study).
"""
from __future__ import annotations

import math

import numpy as np

import ocp

from .checks import integer, scalar
from .scenario import Scenario

INPUTS, CLASSES, ALL_SAMPLES = 64, 10, 1797
MAX_HIDDEN = 1024          # D ≈ 77,000: beyond it θ0 alone would not be a "small network"


def parameter_count(hidden: int) -> int:
    """D = hidden·64 + hidden + 10·hidden + 10."""
    return hidden * (INPUTS + 1) + CLASSES * (hidden + 1)


def digits(samples: int, seed: int) -> tuple:
    """(inputs (N, 64) in [0, 1], labels (N,)): all of load_digits, or a seeded subset of N."""
    from sklearn.datasets import load_digits
    data = load_digits()
    inputs, labels = data.data / 16.0, data.target
    if samples < len(labels):
        chosen = np.sort(np.random.default_rng(seed).permutation(len(labels))[:samples])
        inputs, labels = inputs[chosen], labels[chosen]
    return inputs, labels


def mlp_loss(theta, inputs, labels, hidden: int, weight_decay: float):
    """The full-batch loss above on a flat torch θ (D,) → scalar tensor (torch.func friendly)."""
    import torch
    end_w1 = hidden * INPUTS
    end_b1 = end_w1 + hidden
    end_w2 = end_b1 + CLASSES * hidden
    w1 = theta[:end_w1].reshape(hidden, INPUTS)
    w2 = theta[end_b1:end_w2].reshape(CLASSES, hidden)
    logits = torch.tanh(inputs @ w1.T + theta[end_w1:end_b1]) @ w2.T + theta[end_w2:]
    return torch.nn.functional.cross_entropy(logits, labels) + 0.5 * weight_decay * (theta @ theta)


class DigitsMLPScenario(Scenario):
    name = "digits_mlp"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), Eq. 2 with f = 0, G = I and L the "
                 "full-batch cross-entropy of a tanh MLP 64 → hidden → 10 on scikit-learn's digits "
                 "+ (λ/2)|θ|² (issue 25)")
    defaults = {"hidden": 72, "weight_decay": 1e-2, "samples": ALL_SAMPLES, "gamma": 1.0, "eta": 1.0,
                "k": 1.0, "seed": 0}
    ranges = {"hidden": f"integer in [1, {MAX_HIDDEN}] (D = 75·hidden + 10; 72 → 5,410)",
              "weight_decay": "λ > 0 (a minimum exists only with it)",
              "samples": f"integer in [10, {ALL_SAMPLES}] (a seeded subset below {ALL_SAMPLES})",
              "gamma": "≥ 0; validation: 1 (finite H = 10 and infinite horizon)",
              "eta": "> 0", "k": "> 0", "seed": "integer ≥ 0 (θ0 and the subset)"}
    validation_gammas = (1.0,)
    validation_horizons = (10.0, math.inf)
    in_default_validation = False
    rule_orders = True
    checked_optimizers = ("sgd", "adam", "mpc")

    def normalise(self, params):
        out = {"hidden": integer("hidden", params["hidden"], low=1),
               "samples": integer("samples", params["samples"], low=10),
               "seed": integer("seed", params["seed"], low=0)}
        if out["hidden"] > MAX_HIDDEN:
            raise ocp.ProblemError(f"parameter 'hidden' must be ≤ {MAX_HIDDEN}, got {out['hidden']}")
        if out["samples"] > ALL_SAMPLES:
            raise ocp.ProblemError(f"parameter 'samples' must be ≤ {ALL_SAMPLES} (the digits data set), "
                                   f"got {out['samples']}")
        for key in ("weight_decay", "gamma", "eta", "k"):
            out[key] = scalar(key, params[key])
        for key in ("weight_decay", "eta", "k"):
            if out[key] <= 0:
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {out[key]}; "
                                       f"valid: {self.ranges[key]}")
        if out["gamma"] < 0:
            raise ocp.ProblemError(f"parameter 'gamma' must be ≥ 0, got {out['gamma']}")
        return out

    def build(self, params):
        import torch

        from .torch_loss import TorchLoss
        inputs, labels = digits(params["samples"], params["seed"])
        self._data = (torch.as_tensor(inputs, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.long))
        loss = TorchLoss(self.torch_loss, parameter_count(params["hidden"]), name=self.name)
        return ocp.DiscountedOCP(dim=loss.dim, loss=loss, gamma=params["gamma"], eta=params["eta"],
                                 k=params["k"], name=self.name)

    def torch_loss(self, theta):
        """L(θ) natively in torch (the TorchLoss of :meth:`build` wraps this same function)."""
        inputs, labels = self._data
        if theta.dtype != inputs.dtype or theta.device != inputs.device:
            inputs = inputs.to(dtype=theta.dtype, device=theta.device)
            labels = labels.to(device=theta.device)
        return mlp_loss(theta, inputs, labels, self.params["hidden"], self.params["weight_decay"])

    def default_theta0(self):
        """nn.Linear's default initialisation U(±1/√fan_in) for weights and biases, from ``seed``."""
        hidden = self.params["hidden"]
        rng = np.random.default_rng(self.params["seed"])
        first = rng.uniform(-1, 1, hidden * (INPUTS + 1)) / math.sqrt(INPUTS)
        second = rng.uniform(-1, 1, CLASSES * (hidden + 1)) / math.sqrt(hidden)
        return np.concatenate([first[:hidden * INPUTS], first[hidden * INPUTS:],
                               second[:CLASSES * hidden], second[CLASSES * hidden:]])

    def fixed_point(self):
        """θ*: the minimum the engine's infinite-horizon path comes to rest at, downhill from θ0
        (L-BFGS, then Newton–CG on ∇L = 0 with exact HVPs: ``ocp.matrix_free.downhill_rest_point``,
        one computation shared with the solve); ocp.SolveError when the descent does not reach it."""
        from ocp.matrix_free import downhill_rest_point
        return downhill_rest_point(self.problem, self.theta0)
