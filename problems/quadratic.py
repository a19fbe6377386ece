"""Quadratic loss in any dimension (Vastola, Gershman & Rajan 2025, App. C.1 and E).

    L(θ) = ½ (θ − μ)ᵀ H (θ − μ),   f = 0,   G = I

The optimal path is the stable solution of the Euler–Lagrange equation
θ̈ − γθ̇ = ηkH(θ − μ):

    θ(t) = μ + e^{Rt} (θ0 − μ),   R = (γ/2) I − (γ²/4 I + ηkH)^{1/2}

H and μ are constants of the OCP (NLP parameters), so changing them re-solves without
rebuilding the transcription.
"""
from __future__ import annotations

import numpy as np

import ocp

from . import ops
from .scenario import Scenario, array, scalar


def quadratic_loss(theta, H, mu):
    deviation = theta - mu
    return 0.5 * ops.dot(deviation, H @ deviation)


class Quadratic(Scenario):
    name = "quadratic"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. C.1 and E: quadratic loss, "
                 "θ(t) = μ + e^{Rt}(θ0 − μ), R = (γ/2)I − (γ²/4·I + ηkH)^{1/2}")
    defaults = {"H": [1.0, 10.0], "mu": None, "gamma": 1.0, "eta": 1.0, "k": 1.0}
    ranges = {"H": "symmetric positive semidefinite matrix, or a list (its diagonal); "
                   "draws: random SPD, dimension 1–5, condition number ≤ 100",
              "mu": "vector of H's size (default zeros); draws: N(0, 1)",
              "gamma": "≥ 0; validation: 0, 0.1, 1, 10",
              "eta": "> 0; draws: [0.5, 2]", "k": "≥ 0; draws: [0.5, 2]"}

    def normalise(self, params):
        H = array("H", params["H"])
        if H.ndim < 2:  # a scalar or a list: the diagonal
            H = np.diag(np.atleast_1d(H))
        if H.shape[0] != H.shape[1]:
            raise ocp.ProblemError(f"parameter 'H' must be square, got shape {H.shape}")
        if not np.allclose(H, H.T, rtol=1e-10, atol=1e-12 * np.abs(H).max()):
            raise ocp.ProblemError("parameter 'H' must be symmetric")
        smallest = np.linalg.eigvalsh(H).min()
        if smallest < -1e-12 * np.abs(H).max():
            raise ocp.ProblemError(f"parameter 'H' must be positive semidefinite "
                                   f"(smallest eigenvalue {smallest:.3g})")
        dim = H.shape[0]
        mu = np.zeros(dim) if params["mu"] is None else np.atleast_1d(array("mu", params["mu"], (0, 1)))
        if mu.shape != (dim,):
            raise ocp.ProblemError(f"parameter 'mu' must have length {dim} (the size of H), got {mu.shape[0]}")
        return {"H": H.tolist(), "mu": mu.tolist(),
                **{key: scalar(key, params[key]) for key in ("gamma", "eta", "k")}}

    def build(self, params):
        H = np.array(params["H"])
        return ocp.DiscountedOCP(dim=H.shape[0], loss=quadratic_loss, gamma=params["gamma"],
                                 eta=params["eta"], k=params["k"],
                                 constants={"H": H, "mu": np.array(params["mu"])}, name=self.name)

    def default_theta0(self):
        return np.array(self.params["mu"]) + 1.0

    def fixed_point(self):
        return np.array(self.params["mu"])

    def random_params(self, rng):
        dim = int(rng.integers(1, 6))
        return {"H": random_spd(rng, dim).tolist(), "mu": rng.normal(size=dim).tolist(),
                "eta": float(rng.uniform(0.5, 2)), "k": float(rng.uniform(0.5, 2))}

    def random_theta0(self, rng):
        return self.fixed_point() + rng.normal(size=self.dim)

    def rates(self):
        """Eigenvalues r_i ≤ 0 and eigenvectors of R (columns), from H = V diag(λ) Vᵀ."""
        H = np.array(self.params["H"])
        gamma, eta, k = self.params["gamma"], self.params["eta"], self.params["k"]
        curvature, vectors = np.linalg.eigh(H)
        curvature = np.maximum(curvature, 0.0)
        # γ/2 − √(γ²/4 + ηkλ), rearranged to keep its digits when ηkλ ≪ γ²
        rates = -eta * k * curvature / (gamma / 2 + np.sqrt(gamma ** 2 / 4 + eta * k * curvature))
        rates[(gamma == 0) & (curvature == 0)] = 0.0
        return rates, vectors

    def analytic(self, t, theta0=None):
        """θ(t) = μ + e^{Rt}(θ0 − μ) at times t (scalar → (dim,), array → (n, dim))."""
        theta0 = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float).reshape(-1)
        mu = np.array(self.params["mu"])
        rates, vectors = self.rates()
        times = np.atleast_1d(np.asarray(t, dtype=float))
        modes = vectors.T @ (theta0 - mu)                       # (dim,)
        out = mu + (np.exp(np.outer(times, rates)) * modes) @ vectors.T
        return out[0] if np.ndim(t) == 0 else out


def random_spd(rng, dim: int, max_condition: float = 100.0) -> np.ndarray:
    """A random SPD matrix with eigenvalues log-uniform in [1, max_condition] (1 when dim = 1:
    any scale in [0.1, 10])."""
    if dim == 1:
        return np.array([[10 ** rng.uniform(-1, 1)]])
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.exp(rng.uniform(0, np.log(max_condition), size=dim))
    eigenvalues[:2] = 1.0, max_condition ** rng.uniform(0.5, 1)
    matrix = (rotation * eigenvalues) @ rotation.T
    return 0.5 * (matrix + matrix.T)
