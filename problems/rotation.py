"""Isotropic quadratic loss with rotational drift f(θ) = qJθ (Vastola, Gershman & Rajan 2025,
App. G.1, Eqs. 102–121, Fig. 3c).

    L(θ) = (h/2)|θ − μ|²,   f(θ) = qJθ,   J = [[0, −1], [1, 0]],   G = I

The Euler–Lagrange equation (Eq. 99 with J_f = qJ, Jᵀ = −J, J² = −I) is

    θ̈ − (γI + 2qJ)θ̇ = (q²I − γqJ)θ + ηkh(θ − μ),

with the biased fixed point θ* = ηkh[(ηkh + q²)I − γqJ]⁻¹μ
= ηkh[(ηkh + q²)I + γqJ]μ / ((ηkh + q²)² + γ²q²)  (Eq. 117–118), and on the stable subspace
R = qJ − ρI, ρ = √(γ²/4 + ηkh) − γ/2 (Eq. 116), so the path spirals in:

    θ(t) = θ* + e^{−ρt} Rot(qt)(θ0 − θ*),   Rot(φ) = [[cos φ, −sin φ], [sin φ, cos φ]].
"""
from __future__ import annotations

import numpy as np

import ocp

from . import ops
from .checks import scalar
from .quadratic import RestingOCP, centre, stable_rate
from .scenario import Scenario


def isotropic_loss(theta, h, mu, **_):
    deviation = theta - mu
    return 0.5 * h * ops.dot(deviation, deviation)


def rotation_drift(theta, q, **_):
    return q * ops.stack([-theta[1], theta[0]])


class RotationScenario(Scenario):
    name = "rotation"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. G.1, Eqs. 102–121, Fig. 3c: drift "
                 "f = qJθ; θ(t) = θ* + e^{−ρt}Rot(qt)(θ0 − θ*), ρ = √(γ²/4 + ηkh) − γ/2, "
                 "θ* = ηkh[(ηkh + q²)I − γqJ]⁻¹μ")
    # Fig. 3 (the paper's notebook): h = 4, q = 10, μ = (0, −0.5), θ0 = (1.5, 1.5),
    # γ = 0, η = k = 1
    defaults = {"h": 4.0, "mu": [0.0, -0.5], "q": 10.0, "gamma": 0.0, "eta": 1.0, "k": 1.0}
    ranges = {"h": "> 0 (curvature of the isotropic loss); draws: log-uniform [0.5, 8]",
              "mu": "vector of length 2 (default zeros); draws: N(0, 1)",
              "q": "real (rotation rate, > 0 counter-clockwise); draws: ±[0.5, 5]",
              "gamma": "≥ 0; validation: 0, 0.1, 1, 10",
              "eta": "> 0; draws: [0.5, 2]", "k": "> 0; draws: [0.5, 2]"}

    def normalise(self, params):
        numbers = {key: scalar(key, params[key]) for key in ("h", "q", "gamma", "eta", "k")}
        for key in ("h", "k"):   # both > 0, else nothing pulls the spiral in
            if numbers[key] <= 0:
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {numbers[key]}; "
                                       f"valid: {self.ranges[key]}")
        mu = centre("mu", params["mu"], 2)
        return {"h": numbers["h"], "mu": mu.tolist(),
                **{key: numbers[key] for key in ("q", "gamma", "eta", "k")}}

    def build(self, params):
        mu, h, q = np.array(params["mu"]), params["h"], params["q"]
        # the path rests at θ* ≠ μ: measure the running cost against resting there (RestingOCP)
        constants = {"h": h, "mu": mu, "q": q, "rest": self.fixed_point()}
        return RestingOCP(dim=2, loss=isotropic_loss, drift=rotation_drift, gamma=params["gamma"],
                          eta=params["eta"], k=params["k"], constants=constants, name=self.name)

    def default_theta0(self):
        return np.array([1.5, 1.5])

    def random_params(self, rng):
        return {"h": float(np.exp(rng.uniform(np.log(0.5), np.log(8.0)))),
                "mu": rng.normal(size=2).tolist(),
                "q": float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 5)),
                "eta": float(rng.uniform(0.5, 2)), "k": float(rng.uniform(0.5, 2))}

    def random_theta0(self, rng):
        return self.fixed_point() + rng.normal(size=2)

    def decay_rate(self) -> float:
        """ρ = √(γ²/4 + ηkh) − γ/2 > 0, the real part of −R's eigenvalues (Eq. 109)."""
        h, gamma, eta, k = (self.params[key] for key in ("h", "gamma", "eta", "k"))
        return float(-stable_rate(gamma, eta * k * h))

    def fixed_point(self):
        """θ* = ηkh[(ηkh + q²)I + γqJ]μ / ((ηkh + q²)² + γ²q²) (Eq. 117–118), nearer the origin than μ."""
        h, q, gamma, eta, k = (self.params[key] for key in ("h", "q", "gamma", "eta", "k"))
        mu = np.array(self.params["mu"])
        stiffness, twist = eta * k * h, gamma * q
        diagonal = stiffness + q ** 2
        turned = np.array([-mu[1], mu[0]])          # Jμ
        return stiffness * (diagonal * mu + twist * turned) / (diagonal ** 2 + twist ** 2)

    def analytic(self, t, theta0=None):
        """θ(t) = θ* + e^{−ρt}Rot(qt)(θ0 − θ*) (scalar t → (2,), array → (n, 2))."""
        theta0 = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float).reshape(-1)
        fixed = self.fixed_point()
        times = np.atleast_1d(np.asarray(t, dtype=float))
        offset = theta0 - fixed
        angle, decay = self.params["q"] * times, np.exp(-self.decay_rate() * times)
        cos, sin = np.cos(angle), np.sin(angle)
        out = fixed + decay[:, None] * np.stack([cos * offset[0] - sin * offset[1],
                                                 sin * offset[0] + cos * offset[1]], axis=1)
        return out[0] if np.ndim(t) == 0 else out
