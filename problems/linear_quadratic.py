"""The infinite-horizon optimum of every linear–quadratic scenario, from its Euler–Lagrange equation.

For L = ½(θ − μ)ᵀH(θ − μ), a constant metric G and a linear drift f(θ) = Aθ, the running
cost ℓ = (1/2η)(θ̇ − Aθ)ᵀG(θ̇ − Aθ) + k·L(θ) has the Euler–Lagrange equation
d/dt ∂ℓ/∂θ̇ − γ ∂ℓ/∂θ̇ = ∂ℓ/∂θ (Vastola et al. 2025, App. C, F, G), i.e.

    θ̈ = C θ̇ + K (θ − θ*),   C = A + γI − G⁻¹AᵀG,   K = G⁻¹AᵀGA − γA + ηk G⁻¹H,

with the fixed point (ηkH + AᵀGA − γGA) θ* = ηkHμ (the drift biases it away from μ).
Its solutions grow or decay with exponents in pairs (λ, γ − λ); the optimal path of the
infinite horizon lies on the invariant subspace of the n exponents with Re λ < γ/2
(the others violate the transversality condition e^{−γt}·costate → 0). On that subspace
θ̇ = R(θ − θ*) with R = U₂U₁⁻¹ from an ordered real Schur form, and

    θ(t) = θ* + e^{Rt}(θ0 − θ*).

See docs/derivations.md for the steps. This is the general reference; scenarios with a
printed closed form (quadratic, natural gradient, rotation, weight decay) are checked
against it and against collocation.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

import ocp


def fixed_point(H, mu, gamma, eta, k, G=None, A=None) -> np.ndarray:
    """θ* solving (ηkH + AᵀGA − γGA) θ* = ηkHμ."""
    H, G, A = _matrices(H, G, A)
    lhs = eta * k * H + A.T @ G @ A - gamma * G @ A
    return np.linalg.solve(lhs, eta * k * H @ np.asarray(mu, dtype=float))


def feedback_matrix(H, gamma, eta, k, G=None, A=None) -> np.ndarray:
    """R with θ̇ = R(θ − θ*) on the optimal path: the stable invariant subspace of the EL flow."""
    H, G, A = _matrices(H, G, A)
    n = H.shape[0]
    G_inv = np.linalg.inv(G)
    C = A + gamma * np.eye(n) - G_inv @ A.T @ G
    K = G_inv @ A.T @ G @ A - gamma * A + eta * k * G_inv @ H
    flow = np.block([[np.zeros((n, n)), np.eye(n)], [K, C]])
    _, vectors, stable = scipy.linalg.schur(flow, output="real", sort=lambda re, im: re < gamma / 2)
    if stable != n:
        raise ocp.ProblemError(
            f"the Euler–Lagrange flow has {stable} exponents with Re < γ/2, expected {n}: "
            "the loss needs positive curvature in every direction (H ≻ 0)")
    return vectors[n:, :n] @ np.linalg.inv(vectors[:n, :n])


def trajectory(t, theta0, R, theta_star) -> np.ndarray:
    """θ(t) = θ* + e^{Rt}(θ0 − θ*) (scalar t → (n,), array → (m, n))."""
    times = np.atleast_1d(np.asarray(t, dtype=float))
    offset = np.asarray(theta0, dtype=float) - theta_star
    out = np.array([theta_star + scipy.linalg.expm(R * time) @ offset for time in times])
    return out[0] if np.ndim(t) == 0 else out


def _matrices(H, G, A):
    H = np.atleast_2d(np.asarray(H, dtype=float))
    n = H.shape[0]
    G = np.eye(n) if G is None else np.atleast_2d(np.asarray(G, dtype=float))
    A = np.zeros((n, n)) if A is None else np.atleast_2d(np.asarray(A, dtype=float))
    return H, G, A
