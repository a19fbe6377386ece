"""The matrix-free path (ocp.matrix_free) against the collocation path on one CasADi loss; refusals."""
from __future__ import annotations

import dataclasses
import math

import casadi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ocp
from ocp.matrix_free.solve import MAX_DISCOUNT_SPAN


def quadratic_ocp(H, mu, gamma):
    """L = ½(θ − μ)ᵀH(θ − μ) in CasADi, η = k = 1."""
    def loss(theta):
        d = theta - casadi.DM(mu)
        return 0.5 * casadi.dot(d, casadi.mtimes(casadi.DM(H), d))
    return ocp.DiscountedOCP(len(mu), loss, gamma=gamma, eta=1.0, k=1.0)


def quadratic_problem(dim=4, seed=0, gamma=0.5):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(dim, dim))
    return quadratic_ocp(A @ A.T / dim + 0.3 * np.eye(dim), rng.normal(size=dim), gamma)


@pytest.mark.parametrize("horizon", [2.0, math.inf])
def test_matrix_free_matches_collocation_on_a_quadratic(horizon):
    problem = quadratic_problem()
    theta0 = np.zeros(problem.dim)
    free = ocp.solve(problem, theta0, horizon, solver="matrix_free")
    reference = ocp.solve(problem, theta0, horizon, solver="collocation")
    times = np.linspace(0.0, 2.0 if horizon < math.inf else 10.0, 40)
    assert free.stats["solver"] == "matrix_free"
    assert np.abs(free(times) - reference(times)).max() < 1e-6
    assert free.objective == pytest.approx(reference.objective, rel=1e-8)
    assert free.stats["euler_lagrange_error"] <= 1e-6


def test_external_loss_refusals():
    problem = quadratic_problem()
    loss = ocp.ExternalLoss.from_casadi(problem)
    with pytest.raises(ocp.ProblemError, match="drift"):
        ocp.DiscountedOCP(problem.dim, loss, drift=lambda theta: theta)
    external = ocp.DiscountedOCP(problem.dim, loss, gamma=0.5)
    with pytest.raises(ocp.ProblemError, match="collocation"):
        ocp.solve(external, np.zeros(problem.dim), 2.0, solver="collocation")
    with pytest.raises(ocp.ProblemError, match="shape"):
        loss.gradient(np.zeros(problem.dim + 1))
    with pytest.raises(ocp.ProblemError, match="krylov_hvps must be callable"):
        ocp.ExternalLoss(2, value=float, gradient=abs, hvp=abs, krylov_hvps="float32")
    wrong = ocp.ExternalLoss(2, value=lambda th: 0.0, gradient=lambda th: th, hvp=lambda th, v: v,
                             krylov_hvps=lambda ths, vs: vs[:1], name="wrong")
    with pytest.raises(ocp.ProblemError, match="hvps must return shape"):
        wrong.hvps(np.zeros((3, 2)), np.ones((3, 2)), krylov=True)


def test_a_non_converged_solve_is_refused():
    problem = quadratic_problem()
    with pytest.raises(ocp.SolveError) as caught:
        ocp.solve(problem, np.zeros(problem.dim), 2.0, solver="matrix_free", matrix_free={"max_newton": 1})
    assert caught.value.status == "newton_not_converged"


@settings(max_examples=4, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), dim=st.integers(2, 5), gamma=st.floats(1.0, 4.0))
def test_past_the_scaled_span_the_infinite_horizon_is_a_window_of_the_closed_form(seed, dim, gamma):
    """γ ≫ sqrt(ηk·λ_min) (a flat direction, λ = 1e-3): γ·T_end is in the thousands. The path is the
    truncated free-end one, on [0, W] with γ(T − W) = decay, and equals the closed form there."""
    rng = np.random.default_rng(seed)
    vectors = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    values = np.concatenate([[1e-3], rng.uniform(0.5, 3.0, dim - 1)])
    H, mu = (vectors * values) @ vectors.T, rng.normal(size=dim)
    problem = quadratic_ocp(H, mu, gamma)
    theta0 = rng.normal(size=dim)
    path = ocp.solve(problem, theta0, math.inf, solver="matrix_free")
    stats = path.stats
    assert stats["tail"] == "truncated" and stats["reached_rest"] is False
    assert stats["window_end"] == pytest.approx((MAX_DISCOUNT_SPAN - 36.0) / gamma)
    assert path.t[-1] >= stats["window_end"] and path.t[-1] < stats["truncated_horizon"]
    horizons = [step["horizon"] for step in stats["continuation"]]       # γT_k = 12, 24, ..., 60
    assert horizons == pytest.approx(np.arange(12.0, MAX_DISCOUNT_SPAN + 1, 12.0) / gamma)
    assert stats["newton_iterations"] >= sum(step["newton_iterations"] for step in stats["continuation"])
    rates = gamma / 2 - np.sqrt(gamma ** 2 / 4 + values)
    times = np.linspace(0.0, stats["window_end"], 40)
    exact = mu + (np.exp(np.outer(times, rates)) * ((theta0 - mu) @ vectors)) @ vectors.T
    assert np.abs(path(times) - exact).max() <= 1e-6 * np.abs(theta0 - mu).max()


def test_a_decay_that_leaves_no_window_is_refused():
    mu = np.array([1.0, -1.0])

    def loss(theta):
        d = theta - casadi.DM(mu)
        return 0.5 * (0.001 * d[0] ** 2 + d[1] ** 2)
    problem = ocp.DiscountedOCP(2, loss, gamma=1.0)
    with pytest.raises(ocp.SolveError) as caught:
        ocp.solve(problem, np.zeros(2), math.inf, solver="matrix_free", matrix_free={"decay": 70.0})
    assert caught.value.status == "discount_span_too_long"


def test_a_loss_returning_nan_is_a_problem_error():
    def gradient(theta):
        return np.full_like(theta, np.nan)
    loss = ocp.ExternalLoss(2, value=lambda theta: float(theta @ theta), gradient=gradient,
                            hvp=lambda theta, v: 2 * v, name="broken")
    problem = ocp.DiscountedOCP(2, loss, gamma=0.5)
    with pytest.raises(ocp.ProblemError, match="broken"):
        ocp.solve(problem, np.ones(2), 2.0)


def test_bad_solver_options_are_problem_errors():
    problem, theta0 = quadratic_problem(), np.zeros(4)
    with pytest.raises(ocp.ProblemError, match="solver must be one of"):
        ocp.solve(problem, theta0, 2.0, solver="newton")
    with pytest.raises(ocp.ProblemError, match="unknown matrix_free settings"):
        ocp.solve(problem, theta0, 2.0, solver="matrix_free", matrix_free={"max_newtons": 3})
    with pytest.raises(ocp.ProblemError, match="matrix_free must be a dict"):
        ocp.solve(problem, theta0, 2.0, solver="matrix_free", matrix_free=3)
    with pytest.raises(ocp.ProblemError):
        ocp.solve(problem, theta0, 2.0, solver="matrix_free", matrix_free={"max_newton": 0})
    drifting = ocp.DiscountedOCP(2, lambda theta: casadi.sumsqr(theta), gamma=0.5, drift=lambda theta: -theta)
    with pytest.raises(ocp.ProblemError, match="solver='matrix_free' needs"):
        ocp.solve(drifting, np.ones(2), 2.0, solver="matrix_free")


@settings(max_examples=5, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), dim=st.integers(2, 6), gamma=st.floats(0.1, 0.5))
def test_random_convex_quadratics_follow_the_closed_form(seed, dim, gamma):
    """θ(t) = μ + V e^{Rt} Vᵀ (θ0 − μ), R = γ/2 − sqrt(γ²/4 + ηkλ) per eigenpair (λ, V) of H (§1)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(dim, dim))
    H, mu = A @ A.T / dim + 0.5 * np.eye(dim), rng.normal(size=dim)
    problem = quadratic_ocp(H, mu, gamma)
    theta0 = rng.normal(size=dim)
    path = ocp.solve(problem, theta0, math.inf, solver="matrix_free")
    values, vectors = np.linalg.eigh(H)
    rates = gamma / 2 - np.sqrt(gamma ** 2 / 4 + values)
    times = np.linspace(0.0, 8.0, 30)
    exact = mu + (np.exp(np.outer(times, rates)) * ((theta0 - mu) @ vectors)) @ vectors.T
    assert np.abs(path(times) - exact).max() <= 1e-6 * np.abs(theta0 - mu).max()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(intervals=st.integers(2, 80), fraction=st.floats(0.01, 0.99))
def test_the_continuations_meshes_are_the_final_meshs_leading_elements(intervals, fraction):
    from ocp.matrix_free.mesh import chebyshev_boundaries
    from ocp.matrix_free.solve import _leading
    final = chebyshev_boundaries(60.0, intervals)
    horizon = 60.0 * fraction
    leading = _leading(final, horizon)
    assert leading[0] == 0.0 and leading[-1] == horizon and np.all(np.diff(leading) > 0)
    kept = leading[:-1]
    np.testing.assert_array_equal(kept, final[:len(kept)])       # the same elements up to the last
    last = final[len(kept)]
    assert last >= horizon or horizon - last < 0.5 * (last - kept[-1])   # the next end is not left out


def test_blas_threads_are_limited_while_the_engine_works_with_the_loss():
    import threadpoolctl
    problem = quadratic_problem()
    base = ocp.ExternalLoss.from_casadi(problem)
    with pytest.raises(ocp.ProblemError, match="blas_threads"):
        ocp.ExternalLoss(2, value=float, gradient=abs, hvp=abs, blas_threads=0)
    limited = ocp.ExternalLoss(problem.dim, base.value, base.gradient, base.hvp, blas_threads=1)
    blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    with limited.thread_limits():
        assert all(info["num_threads"] == 1 for info in threadpoolctl.threadpool_info()
                   if info["user_api"] == "blas")
    assert [info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"] == [info["num_threads"] for info in blas]
    with base.thread_limits():       # None: nothing changed
        assert [info["num_threads"] for info in threadpoolctl.threadpool_info()
                if info["user_api"] == "blas"] == [info["num_threads"] for info in blas]
    external = ocp.DiscountedOCP(problem.dim, limited, gamma=0.5)
    path = ocp.solve(external, np.zeros(problem.dim), 2.0)
    assert path.stats["euler_lagrange_error"] <= 1e-6


def _spectrum_loss(eigenvalues, seed, krylov_error=0.0, krylov_shift=0.0):
    """L = ½θᵀHθ with H = QΛQᵀ; Krylov HVPs those of H + E + shift·I, E random of relative size
    ``krylov_error``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))
    H = (Q * eigenvalues) @ Q.T
    noise = rng.normal(size=H.shape)
    E = krylov_error * np.abs(eigenvalues).max() * (noise + noise.T) / (2 * np.linalg.norm(noise, 2))
    return ocp.ExternalLoss(len(eigenvalues), lambda th: 0.5 * th @ H @ th, lambda th: H @ th,
                            lambda th, v: H @ v,
                            krylov_hvps=lambda ths, vs: vs @ (H + E + krylov_shift * np.eye(len(H))))


@settings(max_examples=6, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), dim=st.integers(3, 40), smallest=st.floats(1e-4, 1e-1))
def test_the_curvature_range_is_float64_accurate_from_inexact_krylov_hvps(seed, dim, smallest):
    from ocp.matrix_free.objective import MetricLoss
    from ocp.matrix_free.rest import curvature_range
    eigenvalues = np.linspace(smallest, 3.0, dim)
    loss = _spectrum_loss(eigenvalues, seed, krylov_error=1e-7)
    low, high = curvature_range(MetricLoss(loss, None), np.zeros(dim))
    assert low == pytest.approx(smallest, rel=1e-3) and high == pytest.approx(3.0, rel=1e-6)


def test_a_saddle_is_refused_even_when_the_krylov_hvps_hide_it():
    from ocp.matrix_free.objective import MetricLoss
    from ocp.matrix_free.rest import curvature_range
    loss = _spectrum_loss(np.array([-1e-3, 0.5, 1.0, 2.0, 3.0]), 1, krylov_shift=2e-3)   # Krylov: all > 0
    with pytest.raises(ocp.SolveError) as caught:
        curvature_range(MetricLoss(loss, None), np.zeros(5))
    assert caught.value.status == "rest_point_not_a_minimum"


@pytest.mark.parametrize("metric", [None, "diagonal", "matrix"])
def test_the_euler_lagrange_error_of_an_external_loss_is_the_casadi_one(metric):
    rng = np.random.default_rng(3)
    G = {None: None, "diagonal": rng.uniform(0.5, 2.0, 4),
         "matrix": (lambda A: A @ A.T / 4 + 0.5 * np.eye(4))(rng.normal(size=(4, 4)))}[metric]
    A = rng.normal(size=(4, 4))
    H, mu = A @ A.T / 4 + 0.3 * np.eye(4), rng.normal(size=4)

    def loss(theta):
        d = theta - casadi.DM(mu)
        return 0.5 * casadi.dot(d, casadi.mtimes(casadi.DM(H), d))
    symbolic = ocp.DiscountedOCP(4, loss, gamma=0.5, metric=G)
    external = ocp.DiscountedOCP(4, ocp.ExternalLoss.from_casadi(symbolic), gamma=symbolic.gamma, metric=G)
    path = ocp.solve(external, np.zeros(4), 2.0)
    by_casadi = ocp.euler_lagrange_error(symbolic, path)
    assert ocp.euler_lagrange_error(external, path) == pytest.approx(by_casadi, rel=1e-9, abs=1e-14)
    np.testing.assert_allclose(ocp.euler_lagrange_residual(external, path),
                               ocp.euler_lagrange_residual(symbolic, path), rtol=1e-9, atol=1e-12)
    assert by_casadi < 1e-4
    moved = dataclasses.replace(path, theta=path.theta + 0.1 * np.sin(path.t)[:, None])
    assert ocp.euler_lagrange_error(external, moved) > 10 * by_casadi


def _rest_point(loss, phi0):
    from ocp.budget import Deadline
    from ocp.matrix_free.objective import MetricLoss
    from ocp.matrix_free.rest import rest_point
    return rest_point(MetricLoss(loss, None), np.asarray(phi0, float), Deadline(None))


@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), dim=st.integers(2, 30), stiffness=st.floats(1.0, 1e4))
def test_the_rest_point_of_a_nonconvex_valley_meets_its_tolerance(seed, dim, stiffness):
    """Rosenbrock's valley (nonconvex; its Hessian indefinite off the valley floor), stiffened: the
    globalised Newton–CG reaches ‖∇L‖ ≤ REST_TOL from a far start, at a strict minimum."""
    from scipy.optimize import rosen, rosen_der, rosen_hess_prod

    from ocp.matrix_free.objective import MetricLoss
    from ocp.matrix_free.rest import REST_TOL, curvature_range
    scale = stiffness / 100.0
    loss = ocp.ExternalLoss(dim, lambda th: scale * rosen(th), lambda th: scale * rosen_der(th),
                            lambda th, v: scale * rosen_hess_prod(th, v))
    phi0 = np.random.default_rng(seed).uniform(-2.0, 2.0, dim)
    phi, stats = _rest_point(loss, phi0)
    assert np.abs(loss.gradient(phi)).max() <= REST_TOL * max(1.0, np.abs(loss.gradient(phi0)).max())
    assert stats["rest_gradient"] == pytest.approx(np.abs(loss.gradient(phi)).max())
    assert curvature_range(MetricLoss(loss, None), phi)[0] > 0


def test_the_rest_point_survives_a_trust_region_stalled_by_rounding_in_the_value():
    """A value known only to ~1e-7 (as a float32 network loss's is): the trust region's ratio test
    fails near θ*, and the Newton steps, judged by the gradient, finish the descent."""
    import scipy.optimize
    rng = np.random.default_rng(1)
    A = rng.normal(size=(12, 12))
    H, mu = A @ A.T / 12 + 1e-2 * np.eye(12), rng.normal(size=12)
    loss = ocp.ExternalLoss(12, lambda th: 0.5 * (th - mu) @ H @ (th - mu) + 1e-7 * rng.normal(),
                            lambda th: H @ (th - mu), lambda th, v: H @ v)
    alone = scipy.optimize.minimize(lambda th: (loss.value(th), loss.gradient(th)), np.zeros(12), jac=True,
                                    hessp=loss.hvp, method="trust-ncg", options={"gtol": 1e-10})
    assert "bad approximation" in alone.message      # the stall this test is about
    phi, stats = _rest_point(loss, np.zeros(12))
    np.testing.assert_allclose(phi, mu, atol=1e-7)
    assert stats["rest_gradient"] <= 1e-10


def test_a_tilted_plane_has_no_rest_point():
    loss = ocp.ExternalLoss(3, lambda th: float(np.sum(th)), lambda th: np.ones(3), lambda th, v: 0.0 * v)
    with pytest.raises(ocp.SolveError) as caught:
        _rest_point(loss, np.full(3, 0.5))
    assert caught.value.status == "rest_point_not_found"
