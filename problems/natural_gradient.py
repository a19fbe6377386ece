"""Quadratic loss under a constant metric: natural gradient (Vastola, Gershman & Rajan 2025,
App. F, Eqs. 88–93, Fig. 3b).

    L(θ) = ½(θ − μ)ᵀH(θ − μ),   f = 0,   G constant SPD

The Euler–Lagrange equation G(θ̈ − γθ̇) = ηkH(θ − μ) is the quadratic's with H → G⁻¹H
(Eq. 93), so

    θ(t) = μ + e^{Rt}(θ0 − μ),   R = (γ/2)I − (γ²/4·I + ηk G⁻¹H)^{1/2}.

G⁻¹H is not symmetric, but the generalised eigenvectors HV = GVΛ with VᵀGV = I diagonalise
it: G⁻¹H = VΛV⁻¹ and V⁻¹ = VᵀG, so e^{Rt} = V e^{rt} VᵀG with real rates
r_i = γ/2 − √(γ²/4 + ηkλ_i). H, μ are OCP constants and G is the OCP's constant metric.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

import ocp

from .checks import scalar
from .quadratic import (
    DEFINITE_H,
    QuadraticScenario,
    curvature_and_centre,
    modal_path,
    quadratic_loss,
    random_spd,
    stable_rate,
    symmetric_matrix,
)
from .scenario import Scenario


class NaturalGradientScenario(Scenario):
    name = "natural_gradient"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. F, Eqs. 88–93, Fig. 3b: constant "
                 "metric G, θ(t) = μ + e^{Rt}(θ0 − μ), R = (γ/2)I − (γ²/4·I + ηkG⁻¹H)^{1/2}")
    # Fig. 3 (the paper's notebook): h = (4, 4), G = diag(1/50, 1), μ = (0, −0.5),
    # θ0 = (1.5, 1.5), γ = 0, η = k = 1
    defaults = {"H": [4.0, 4.0], "G": [0.02, 1.0], "mu": [0.0, -0.5],
                "gamma": 0.0, "eta": 1.0, "k": 1.0}
    ranges = {**QuadraticScenario.ranges, "H": DEFINITE_H,
              "G": "symmetric positive definite matrix of H's size, or a list (its diagonal, > 0); "
                   "draws: random SPD / 10, condition number ≤ 100"}

    def normalise(self, params):
        H, mu = curvature_and_centre(params, definite=True)
        G = symmetric_matrix("G", params["G"], definite=True)
        if G.shape != H.shape:
            raise ocp.ProblemError(f"parameter 'G' must have the shape of H {H.shape}, got {G.shape}")
        return {"H": H.tolist(), "G": G.tolist(), "mu": mu.tolist(),
                **{key: scalar(key, params[key]) for key in ("gamma", "eta", "k")}}

    def build(self, params):
        H = np.array(params["H"])
        return ocp.DiscountedOCP(dim=H.shape[0], loss=quadratic_loss, gamma=params["gamma"],
                                 eta=params["eta"], k=params["k"], metric=np.array(params["G"]),
                                 constants={"H": H, "mu": np.array(params["mu"])}, name=self.name)

    def default_theta0(self):
        return np.full(self.dim, 1.5)

    def fixed_point(self):
        return np.array(self.params["mu"])

    def random_params(self, rng):
        dim = int(rng.integers(1, 6))
        return {"H": random_spd(rng, dim).tolist(), "G": (random_spd(rng, dim) / 10).tolist(),
                "mu": rng.normal(size=dim).tolist(),
                "eta": float(rng.uniform(0.5, 2)), "k": float(rng.uniform(0.5, 2))}

    def random_theta0(self, rng):
        return self.fixed_point() + rng.normal(size=self.dim)

    def modes(self) -> tuple:
        """(r, V, VᵀG): rates and the modes of G⁻¹H (HV = GVΛ, VᵀGV = I) with their inverse."""
        H, G = np.array(self.params["H"]), np.array(self.params["G"])
        curvature, vectors = scipy.linalg.eigh(H, G)
        eta, k = self.params["eta"], self.params["k"]
        return stable_rate(self.params["gamma"], eta * k * curvature), vectors, vectors.T @ G

    def analytic(self, t, theta0=None):
        """θ(t) = μ + V e^{rt} VᵀG (θ0 − μ) (scalar t → (dim,), array → (n, dim))."""
        theta0 = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float).reshape(-1)
        return modal_path(t, theta0, self.fixed_point(), *self.modes())
