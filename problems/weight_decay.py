"""Quadratic loss with weight-decay drift f(θ) = −jθ (Vastola, Gershman & Rajan 2025,
App. G.2, Eqs. 122–128, Fig. 3d).

    L(θ) = ½(θ − μ)ᵀH(θ − μ),   f(θ) = −jθ (j ≥ 0),   G = I

The Euler–Lagrange equation (Eq. 99 with J_f = −jI) is

    θ̈ − γθ̇ = j(j + γ)θ + ηkH(θ − μ),

so the path converges to the biased fixed point θ* = B μ, B = ηkH[ηkH + j(j + γ)I]⁻¹, and

    θ(t) = θ* + Q e^{diag(r)t} Qᵀ(θ0 − θ*),   r_i = γ/2 − √((j + γ/2)² + ηkλ_i),

with H = QΛQᵀ. The appendix prints j(j − γ) instead of j(j + γ) in Eqs. 122–128 (and its
Fig. 3 notebook uses it); the two agree only at γ = 0 (docs/discrepancies.md).
"""
from __future__ import annotations

import numpy as np

import ocp

from .checks import scalar
from .quadratic import (
    DEFINITE_H,
    QuadraticScenario,
    RestingOCP,
    curvature_and_centre,
    modal_path,
    quadratic_loss,
    random_spd,
    stable_rate,
)
from .scenario import Scenario


def weight_decay_loss(theta, H, mu, **_):
    return quadratic_loss(theta, H, mu)


def weight_decay_drift(theta, j, **_):
    return -j * theta


class WeightDecayScenario(Scenario):
    name = "weight_decay"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. G.2, Eqs. 122–128, Fig. 3d: "
                 "drift f = −jθ; θ(t) = θ* + e^{Rt}(θ0 − θ*), θ* = ηkH[ηkH + j(j+γ)I]⁻¹μ, "
                 "R = (γ/2)I − ((j+γ/2)²I + ηkH)^{1/2} (the paper prints j(j−γ))")
    # Fig. 3 (the paper's notebook): h = (4, 4), j = 10, μ = (0, −0.5), θ0 = (1.5, 1.5),
    # γ = 0, η = k = 1
    defaults = {"H": [4.0, 4.0], "mu": [0.0, -0.5], "j": 10.0, "gamma": 0.0, "eta": 1.0, "k": 1.0}
    ranges = {**QuadraticScenario.ranges, "H": DEFINITE_H, "j": "≥ 0 (weight-decay rate); draws: [0.1, 5]"}

    def normalise(self, params):
        H, mu = curvature_and_centre(params, definite=True)
        params = {**params, **{key: scalar(key, params[key]) for key in ("j", "gamma", "eta", "k")}}
        if params["j"] < 0:
            raise ocp.ProblemError(f"parameter 'j' must be ≥ 0, got {params['j']}; valid: {self.ranges['j']}")
        return {"H": H.tolist(), "mu": mu.tolist(),
                **{key: params[key] for key in ("j", "gamma", "eta", "k")}}

    def build(self, params):
        H, mu, j = np.array(params["H"]), np.array(params["mu"]), params["j"]
        # the path rests at θ* ≠ μ: measure the running cost against resting there (RestingOCP)
        constants = {"H": H, "mu": mu, "j": j, "rest": self.fixed_point()}
        return RestingOCP(dim=H.shape[0], loss=weight_decay_loss, drift=weight_decay_drift,
                          gamma=params["gamma"], eta=params["eta"], k=params["k"],
                          constants=constants, name=self.name)

    def default_theta0(self):
        return np.full(self.dim, 1.5)

    def random_params(self, rng):
        dim = int(rng.integers(1, 6))
        return {"H": random_spd(rng, dim).tolist(), "mu": rng.normal(size=dim).tolist(),
                "j": float(rng.uniform(0.1, 5)),
                "eta": float(rng.uniform(0.5, 2)), "k": float(rng.uniform(0.5, 2))}

    def random_theta0(self, rng):
        return self.fixed_point() + rng.normal(size=self.dim)

    def spectrum(self) -> tuple:
        """(r, b, Q): rates r_i, biases b_i = ηkλ_i/(ηkλ_i + j(j + γ)) and eigenvectors of H."""
        H = np.array(self.params["H"])
        j, gamma, eta, k = (self.params[key] for key in ("j", "gamma", "eta", "k"))
        curvature, vectors = np.linalg.eigh(H)
        stiffness = eta * k * curvature
        drag = j * (j + gamma)
        total = stiffness + drag
        bias = np.divide(stiffness, total, out=np.ones_like(total), where=total > 0)  # k = j = 0: no pull
        return stable_rate(gamma, total), bias, vectors

    def fixed_point(self):
        """θ* = Q diag(b) Qᵀ μ: where the drift's pull balances the loss (not μ when j > 0)."""
        _, bias, vectors = self.spectrum()
        return vectors @ (bias * (vectors.T @ np.array(self.params["mu"])))

    def analytic(self, t, theta0=None):
        """θ(t) = θ* + Q e^{diag(r)t} Qᵀ(θ0 − θ*) (scalar t → (dim,), array → (n, dim))."""
        theta0 = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float).reshape(-1)
        rates, _, vectors = self.spectrum()
        return modal_path(t, theta0, self.fixed_point(), rates, vectors, vectors.T)
