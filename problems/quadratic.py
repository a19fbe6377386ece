"""Quadratic loss in any dimension (Vastola, Gershman & Rajan 2025, App. C.1 and E).

    L(θ) = ½ (θ − μ)ᵀ H (θ − μ),   f = 0,   G = I

The optimal path is the stable solution of the Euler–Lagrange equation
θ̈ − γθ̇ = ηkH(θ − μ):

    θ(t) = μ + e^{Rt} (θ0 − μ),   R = (γ/2) I − (γ²/4 I + ηkH)^{1/2}

H and μ are constants of the OCP (NLP parameters), so changing them re-solves without
rebuilding the transcription.
"""
from __future__ import annotations

import casadi
import numpy as np

import ocp

from . import ops
from .checks import array, scalar
from .scenario import Scenario

SPD_DRAWS = "draws: random SPD, dimension 1–5, condition number ≤ 100"
DEFINITE_H = "symmetric positive definite matrix, or a list (its diagonal, > 0); " + SPD_DRAWS


def quadratic_loss(theta, H, mu):
    deviation = theta - mu
    return 0.5 * ops.dot(deviation, H @ deviation)


class QuadraticScenario(Scenario):
    name = "quadratic"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. C.1 and E: quadratic loss, "
                 "θ(t) = μ + e^{Rt}(θ0 − μ), R = (γ/2)I − (γ²/4·I + ηkH)^{1/2}")
    defaults = {"H": [1.0, 10.0], "mu": None, "gamma": 1.0, "eta": 1.0, "k": 1.0}
    ranges = {"H": "symmetric positive semidefinite matrix, or a list (its diagonal); " + SPD_DRAWS,
              "mu": "vector of H's size (default zeros); draws: N(0, 1)",
              "gamma": "≥ 0; validation: 0, 0.1, 1, 10",
              "eta": "> 0; draws: [0.5, 2]", "k": "≥ 0; draws: [0.5, 2]"}

    def normalise(self, params):
        H, mu = curvature_and_centre(params, definite=False)
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
        rates = stable_rate(gamma, eta * k * curvature)
        return rates, vectors

    def analytic(self, t, theta0=None):
        """θ(t) = μ + e^{Rt}(θ0 − μ) at times t (scalar → (dim,), array → (n, dim))."""
        theta0 = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float).reshape(-1)
        mu = np.array(self.params["mu"])
        rates, vectors = self.rates()
        return modal_path(t, theta0, mu, rates, vectors, vectors.T)


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


def symmetric_matrix(name: str, value, definite: bool) -> np.ndarray:
    """A symmetric positive (semi)definite matrix from a matrix, a list (its diagonal) or a
    scalar, or a ProblemError naming the parameter and its valid range."""
    kind = "positive definite" if definite else "positive semidefinite"
    valid = f"valid: a symmetric {kind} matrix, or a list of its diagonal entries"
    matrix = array(name, value)
    if matrix.ndim < 2:  # a scalar or a list: the diagonal
        matrix = np.diag(np.atleast_1d(matrix))
    if matrix.shape[0] != matrix.shape[1]:
        raise ocp.ProblemError(f"parameter {name!r} must be square, got shape {matrix.shape}; {valid}")
    size = np.abs(matrix).max()
    if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12 * size):
        raise ocp.ProblemError(f"parameter {name!r} must be symmetric; {valid}")
    smallest = np.linalg.eigvalsh(matrix).min()
    if smallest < -1e-12 * size or (definite and smallest <= 1e-12 * size):
        raise ocp.ProblemError(f"parameter {name!r} must be {kind} "
                               f"(smallest eigenvalue {smallest:.3g}); {valid}")
    return matrix


def centre(name: str, value, dim: int) -> np.ndarray:
    """A vector of length ``dim`` (``None`` → zeros), or a ProblemError naming the parameter."""
    if value is None:
        return np.zeros(dim)
    vector = np.atleast_1d(array(name, value, (0, 1)))
    if vector.shape != (dim,):
        raise ocp.ProblemError(f"parameter {name!r} must have length {dim} (the size of H), "
                               f"got {vector.shape[0]}")
    return vector


def curvature_and_centre(params: dict, definite: bool) -> tuple:
    """The checked Hessian ``H`` and minimum ``mu`` of a quadratic loss (see :class:`Quadratic`)."""
    H = symmetric_matrix("H", params["H"], definite)
    return H, centre("mu", params["mu"], H.shape[0])


def stable_rate(gamma, stiffness):
    """γ/2 − √(γ²/4 + s), the decaying root of r² − γr − s = 0 (s ≥ 0), rearranged as
    −s/(γ/2 + √(γ²/4 + s)) to keep its digits when s ≪ γ²; 0 when γ = s = 0."""
    stiffness = np.asarray(stiffness, dtype=float)
    denominator = gamma / 2 + np.sqrt(gamma ** 2 / 4 + stiffness)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, -stiffness / safe, 0.0)


def modal_path(t, theta0, fixed, rates, modes, inverse) -> np.ndarray:
    """θ(t) = θ* + S e^{diag(r) t} S⁻¹ (θ0 − θ*) for real rates r and mode matrix S (columns),
    S⁻¹ given as ``inverse`` (scalar t → (dim,), array → (n, dim))."""
    times = np.atleast_1d(np.asarray(t, dtype=float))
    amplitudes = inverse @ (np.asarray(theta0, dtype=float) - fixed)
    out = fixed + (np.exp(np.outer(times, rates)) * amplitudes) @ modes.T
    return out[0] if np.ndim(t) == 0 else out



class RestingOCP(ocp.DiscountedOCP):
    """A :class:`ocp.DiscountedOCP` whose running cost is measured against resting at its
    fixed point θ* (the constant ``rest``): ℓ̃ = ℓ − ℓ(θ*, 0) − p*·(θ̇ − γ(θ − θ*)), with
    p* = ∂ℓ/∂θ̇(θ*, 0) = −G f(θ*)/η.

    Why: with a drift the optimal path rests at θ* where ℓ(θ*, 0) > 0 and p* ≠ 0. At γ = 0
    every path then has J = ∞ (the optimum is the γ → 0 limit), and the free end of the
    mapped infinite horizon sees a cost that does not vanish at rest. The subtracted terms
    are a constant and e^{γt} d/dt[e^{−γt} p*·(θ − θ*)], whose discounted integral is the
    constant p*·(θ0 − θ*): the optimal path and the Euler–Lagrange equation are unchanged
    for every γ, J shifts by a constant, and ℓ̃ vanishes to second order at rest (for a
    convex ℓ it is ≥ 0), as for a loss without drift. The kinetic part carries the
    subtracted terms, so both parts vanish at rest. Loss and drift must accept (and
    ignore) ``rest`` (``**_``).
    """

    def running_cost(self, t, x, xdot, params):
        kinetic, potential = super().running_cost(t, x, xdot, params)
        rest = params["rest"]
        rest_kinetic, rest_potential = super().running_cost(t, rest, casadi.SX.zeros(self.dim, 1), params)
        momentum = -casadi.mtimes(self.metric_matrix(rest, params), self.drift_vector(rest, params))
        momentum = momentum / params["eta"]
        null_lagrangian = casadi.dot(momentum, xdot - params["gamma"] * (x - rest))
        return kinetic - rest_kinetic - null_lagrangian, potential - rest_potential
