"""Infinite-horizon accuracy against the closed form θ(t) = μ + e^{Rt}(θ0 − μ) (App. C.1, E; F).

R = (γ/2)I − (γ²/4 I + ηk M)^{1/2} with M = G⁻¹H; M is similar to the symmetric
G^{-1/2} H G^{-1/2}, so its eigenvalues are real and positive.
"""
import math

import numpy as np
import pytest
from conftest import random_spd

import ocp


def quadratic_problem(H, mu, gamma, eta=1.0, k=1.0, metric=None):
    return ocp.DiscountedOCP(len(mu), lambda th, H, mu: 0.5 * (th - mu).T @ H @ (th - mu),
                             gamma=gamma, eta=eta, k=k, metric=metric, constants={"H": H, "mu": mu})


def exact_path(t, theta0, mu, M, gamma, eta=1.0, k=1.0):
    eigenvalues, vectors = np.linalg.eig(M)
    rates = np.sqrt(gamma ** 2 / 4 + eta * k * eigenvalues.real) - gamma / 2
    coefficients = np.linalg.solve(vectors, theta0 - mu)
    return mu + (np.exp(-np.outer(t, rates)) * coefficients) @ vectors.T.real


@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0, 10.0, 100.0])
@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("with_metric", [False, True])
def test_infinite_horizon_matches_closed_form(dim, gamma, with_metric):
    rng = np.random.default_rng(1000 * dim + int(10 * gamma) + with_metric)
    H = random_spd(rng, dim, condition=100.0)
    mu, theta0 = rng.normal(size=dim), None
    theta0 = mu + rng.normal(size=dim)
    G = None
    if with_metric:
        B = rng.normal(size=(dim, dim))
        G = B @ B.T + dim * np.eye(dim)
    eta, k = rng.uniform(0.5, 2.0, size=2)
    problem = quadratic_problem(H, mu, gamma, eta, k, metric=G)
    traj = ocp.solve(problem, theta0, horizon=math.inf)
    M = H if G is None else np.linalg.solve(G, H)
    exact = exact_path(traj.t, theta0, mu, M, gamma, eta, k)
    scale = np.linalg.norm(theta0 - mu)
    distance = np.linalg.norm(exact - mu, axis=1) / scale
    assert distance.min() <= 1e-6, "the returned path must reach convergence"
    relevant = distance >= 1e-6
    error = np.abs(traj.theta - exact).max(axis=1)[relevant]
    assert error.max() <= 1e-7 * scale
    assert traj.stats["success"] and traj.stats["reached_rest"]


def test_costate_is_value_gradient_on_quadratic(rng):
    """λ(t) = ∇V(θ(t)) = −(1/η) G (θ̇ − f); for the quadratic ∇V = −R(θ−μ)/η."""
    H, mu = random_spd(rng, 2, 10.0), rng.normal(size=2)
    gamma, eta = 0.7, 1.3
    problem = quadratic_problem(H, mu, gamma, eta=eta)
    traj = ocp.solve(problem, mu + 1.0, horizon=math.inf)
    from scipy.linalg import sqrtm
    R = gamma / 2 * np.eye(2) - sqrtm(gamma ** 2 / 4 * np.eye(2) + eta * H).real
    expected = -(R @ (traj.theta - mu).T).T / eta
    early = traj.t <= 5.0
    assert np.abs(traj.costate[early] - expected[early]).max() <= 1e-8


def test_interpolation_uses_collocation_polynomials(rng):
    H, mu = random_spd(rng, 2, 10.0), np.zeros(2)
    problem = quadratic_problem(H, mu, gamma=1.0)
    theta0 = np.array([1.0, -0.5])
    traj = ocp.solve(problem, theta0, horizon=3.0)
    # a finite horizon with free end is not the infinite path; check against the samples'
    # own polynomials: midpoints must be far more accurate than linear interpolation
    fine = ocp.solve(problem, theta0, horizon=3.0, mesh=ocp.Mesh(80, 8))
    mids = 0.5 * (traj.t[1:] + traj.t[:-1])
    poly_error = np.abs(traj(mids) - fine(mids)).max()
    linear = np.array([np.interp(mids, traj.t, traj.theta[:, i]) for i in range(2)]).T
    assert poly_error <= 1e-9
    assert np.abs(linear - fine(mids)).max() > 1e3 * poly_error
    assert np.allclose(traj(traj.t), traj.theta, atol=1e-12)
