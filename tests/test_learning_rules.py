"""The rules against the optimal paths: exactness on linear–quadratic scenarios for any Δt,
the three limits of OptimalQuadratic, stable step factors, negative curvature, the paper's
ballistic rule, first-order convergence of the limit rules, and the runner's API."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import random_spd

import problems
from learning_rules import Ballistic, OptimalQuadratic, kernels
from lossnav.validation.rule_runner import RULES, applicability, convergence_order, limit_trajectory, run_rule
from problems import linear_quadratic

EXACT = 1e-10


class LinearQuadratic:
    """A scenario-shaped L = ½(θ−μ)ᵀH(θ−μ), constant G, drift Aθ, with the EL reference path."""

    name = "linear_quadratic_test"

    def __init__(self, H, mu, gamma, eta=1.0, k=1.0, G=None, A=None, theta0=None):
        self.H, self.mu, self.G, self.A = np.asarray(H), np.asarray(mu), G, A
        self.dim = len(mu)
        self.problem = SimpleNamespace(dim=self.dim, gamma=gamma, eta=eta, k=k, metric=G,
                                       metric_function=None,
                                       drift=None if A is None else (lambda theta: None))
        self.theta0 = np.asarray(theta0) if theta0 is not None else self.mu + 1.0
        self._R = linear_quadratic.feedback_matrix(H, gamma, eta, k, G, A)
        self._star = linear_quadratic.fixed_point(H, mu, gamma, eta, k, G, A)

    def torch_loss(self, theta):
        d = theta - torch.as_tensor(self.mu, dtype=theta.dtype)
        return 0.5 * d @ (torch.as_tensor(self.H, dtype=theta.dtype) @ d)

    def torch_drift(self, theta):
        return torch.as_tensor(self.A, dtype=theta.dtype) @ theta

    def fixed_point(self):
        return self._star

    def has_analytic(self):
        return True

    def analytic(self, t, theta0=None):
        return linear_quadratic.trajectory(t, self.theta0 if theta0 is None else theta0, self._R, self._star)


def relative_error(scenario, t, path):
    scale = np.linalg.norm(scenario.theta0 - scenario.fixed_point())
    return np.max(np.linalg.norm(path - scenario.analytic(t), axis=1)) / scale


# -- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("dt", [0.01, 0.3, 5.0])
def test_optimal_quadratic_is_exact_on_quadratic(rng, gamma, dt):
    H = random_spd(rng, 3, 50.0) * 4
    mu = rng.normal(size=3)
    scenario = problems.get("quadratic", H=H.tolist(), mu=mu.tolist(), gamma=gamma, eta=1.3, k=0.7)
    t, path = run_rule("optimal_quadratic", scenario, dt, 30)
    assert relative_error(scenario, t, path) <= EXACT


@pytest.mark.parametrize("gamma", [0.0, 1.0, 10.0])
@pytest.mark.parametrize("case", ["metric", "weight_decay", "weight_decay_metric", "rotation", "general"])
def test_drift_compensated_is_exact_with_metric_and_drift(rng, gamma, case):
    n = 3
    H = random_spd(rng, n, 20.0) * 3
    G = random_spd(rng, n, 5.0) + 0.2 * np.eye(n) if "metric" in case or case == "general" else None
    skew = rng.normal(size=(n, n))
    A = {"metric": None, "weight_decay": -0.8 * np.eye(n), "weight_decay_metric": -0.8 * np.eye(n),
         "rotation": 1.5 * (skew - skew.T), "general": 0.5 * (skew - skew.T) - 0.3 * np.eye(n)}[case]
    scenario = LinearQuadratic(H, rng.normal(size=n), gamma, 1.1, 0.9, G, A, theta0=rng.normal(size=n))
    rule = "optimal_quadratic" if A is None else "drift_compensated"
    for dt in (0.05, 2.0):
        t, path = run_rule(rule, scenario, dt, 25)
        assert relative_error(scenario, t, path) <= EXACT


REGISTERED = {"quadratic": "optimal_quadratic", "natural_gradient": "optimal_quadratic",
              "weight_decay": "drift_compensated", "rotation": "drift_compensated"}


@pytest.mark.parametrize("name", sorted(REGISTERED))
@pytest.mark.parametrize("gamma", [0.0, 1.0, 10.0])
def test_registered_linear_quadratic_scenarios_are_exact(name, gamma):
    if name not in problems.names():
        pytest.skip(f"scenario {name} not registered")
    scenario = problems.get(name, gamma=gamma)
    for dt in (0.02, 1.0):
        t, path = run_rule(REGISTERED[name], scenario, dt, 40)
        assert relative_error(scenario, t, path) <= EXACT
    assert not applicability("drift_compensated", scenario)


# -- the three limits and the stable step factor ------------------------------------------------
def one_step(H, g_point, lr, gamma, eta=1.0, k=1.0, **options):
    H = torch.as_tensor(H, dtype=torch.float64)
    theta = torch.nn.Parameter(torch.as_tensor(g_point, dtype=torch.float64).clone())
    optimizer = OptimalQuadratic([theta], lr=lr, eta=eta, k=k, gamma=gamma, curvature="exact", **options)

    def closure():
        optimizer.zero_grad()
        loss = 0.5 * theta @ (H @ theta)
        loss.backward()
        return loss
    start = theta.detach().clone()
    optimizer.step(closure)
    return (theta.detach() - start).numpy(), (H @ start).numpy()


def test_large_gamma_limit_is_sgd_at_eta_k_dt_over_gamma(rng):
    H = random_spd(rng, 3, 10.0)
    point, dt, eta, k = rng.normal(size=3), 0.2, 1.5, 0.8
    errors = []
    for gamma in (1e2, 1e3, 1e4):
        step, gradient = one_step(H, point, dt, gamma, eta, k)
        sgd = -eta * k * dt / gamma * gradient
        errors.append(np.linalg.norm(step - sgd) / np.linalg.norm(sgd))
    assert errors[-1] < 1e-4
    assert 8 < errors[0] / errors[1] < 12                              # O(1/γ)


def test_small_gamma_small_dt_limit_is_ballistic(rng):
    H = random_spd(rng, 3, 10.0)
    point, eta, k = rng.normal(size=3), 1.2, 0.9
    eigenvalues, vectors = np.linalg.eigh(H)
    inverse_root = (vectors / np.sqrt(eigenvalues)) @ vectors.T
    errors = []
    for dt in (1e-2, 1e-3, 1e-4):
        step, gradient = one_step(H, point, dt, 0.0, eta, k, damping=1e-12)
        ballistic = -math.sqrt(eta * k) * inverse_root @ gradient * dt
        errors.append(np.linalg.norm(step - ballistic) / np.linalg.norm(ballistic))
    assert errors[-1] < 1e-3
    assert errors[0] / errors[1] == pytest.approx(10, rel=0.1)        # O(Δt)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 100.0])
def test_large_dt_limit_is_newton(rng, gamma):
    H = random_spd(rng, 3, 10.0)
    point = rng.normal(size=3)
    step, gradient = one_step(H, point, 1e6, gamma, damping=1e-12)
    np.testing.assert_allclose(step, -np.linalg.solve(H, gradient), rtol=1e-12, atol=1e-14)


def test_step_factor_keeps_its_digits_where_the_textbook_form_cancels():
    dt, eta_k = 0.5, 2.0
    # curvature → 0 at γ = 1: ψ·ηk → ηkΔt/γ (textbook (1 − e^{rΔt})/λ gives 0/0 or noise)
    for curvature in (1e-30, 1e-200, 0.0):
        value = kernels.step_factor(torch.tensor(curvature, dtype=torch.float64), dt, eta_k, 1.0) * eta_k
        assert float(value) == pytest.approx(eta_k * dt / 1.0, rel=1e-15)
    # large γ at unit curvature: ψ·ηk = ηkΔt/γ · (1 − ηk/γ² + …) − …, to full precision
    gamma = 1e9
    value = float(kernels.step_factor(torch.tensor(1.0, dtype=torch.float64), dt, eta_k, gamma)) * eta_k
    rate = eta_k / gamma
    assert value == pytest.approx(dt * rate * (1 - rate * dt / 2), rel=1e-14)
    # float32 as well (the benchmarked dtype)
    value32 = kernels.step_factor(torch.tensor([0.0, 1e-30, 1.0], dtype=torch.float32), dt, eta_k,
                                  1e6) * eta_k
    assert torch.all(torch.isfinite(value32)) and float(value32[0]) == pytest.approx(eta_k * dt / 1e6,
                                                                                     rel=1e-6)


def test_negative_curvature_abs_goes_downhill_like_positive_curvature():
    H = np.diag([-2.0, 3.0])
    point = np.array([0.5, -0.4])
    step, gradient = one_step(H, point, 0.3, 1.0)
    mirrored, _ = one_step(np.diag([2.0, 3.0]), point, 0.3, 1.0)
    assert step[0] * gradient[0] < 0                                   # downhill, away from the saddle
    assert step[0] == pytest.approx(mirrored[0] * gradient[0] / (2.0 * point[0]), rel=1e-14)
    clipped, _ = one_step(H, point, 0.3, 1.0, negative_curvature="clip")
    flat_factor = float(kernels.step_factor(torch.tensor(0.0, dtype=torch.float64), 0.3, 1.0, 1.0))
    assert clipped[0] == pytest.approx(-flat_factor * gradient[0], rel=1e-14)
    assert clipped[1] == pytest.approx(step[1], rel=1e-14)


def test_hutchinson_is_exact_for_diagonal_hessians_and_refreshes_on_schedule(rng):
    scenario = problems.get("quadratic", H=[0.5, 3.0, 20.0], mu=rng.normal(size=3).tolist(), gamma=0.5)
    torch.manual_seed(0)
    t, path = run_rule("optimal_quadratic", scenario, 0.2, 20, curvature="hutchinson", refresh_interval=3)
    assert relative_error(scenario, t, path) <= EXACT
    theta = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = OptimalQuadratic([theta], lr=0.1, curvature="hutchinson", refresh_interval=3)

    def closure():
        optimizer.zero_grad()
        loss = (theta ** 4).sum()
        loss.backward()
        return loss
    for _ in range(7):
        optimizer.step(closure)
    assert int(optimizer.param_groups[0]["group_state"]["hessian_updates"]) == 3          # steps 1, 4, 7


def test_callable_curvature_dense_and_diagonal(rng):
    H = random_spd(rng, 2, 5.0)
    scenario = problems.get("quadratic", H=H.tolist(), gamma=2.0)
    dense = torch.as_tensor(H)
    t, path = run_rule("optimal_quadratic", scenario, 0.4, 10, curvature=lambda p, g: dense)
    assert relative_error(scenario, t, path) <= EXACT
    diagonal = problems.get("quadratic", H=[1.0, 4.0], gamma=2.0)
    t, path = run_rule("optimal_quadratic", diagonal, 0.4, 10,
                       curvature=lambda p, g: torch.tensor([1.0, 4.0], dtype=p.dtype))
    assert relative_error(diagonal, t, path) <= EXACT


def test_drift_compensated_reaches_the_biased_fixed_point(rng):
    H = random_spd(rng, 2, 5.0)
    mu = np.array([1.0, -0.5])
    scenario = LinearQuadratic(H, mu, 1.0, A=-2.0 * np.eye(2))
    _, path = run_rule("drift_compensated", scenario, 1.0, 200)
    np.testing.assert_allclose(path[-1], scenario.fixed_point(), atol=1e-12)
    assert np.linalg.norm(path[-1] - mu) > 0.1                           # biased away from the minimum


# -- Ballistic ----------------------------------------------------------------------------------
def test_ballistic_paper_setting_is_eq33_exactly():
    torch.manual_seed(0)
    theta = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    reference = theta.detach().clone()
    optimizer = Ballistic.paper([theta], lr=0.01, beta=0.9, eps=1e-8)
    average = torch.zeros(5, dtype=torch.float64)
    for _ in range(6):
        optimizer.zero_grad()
        (theta ** 3).sum().backward()
        optimizer.step()
        gradient = 3 * reference ** 2
        average = 0.9 * average + 0.1 * gradient ** 2
        reference = reference - 0.01 * gradient / torch.sqrt(average + 1e-8)
        torch.testing.assert_close(theta.detach(), reference, rtol=1e-14, atol=1e-15)


def test_ballistic_default_is_adam_without_first_moment():
    paths = []
    for make in (lambda p: Ballistic(p, lr=0.01, beta=0.99),
                 lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.0, 0.99), eps=1e-8)):
        torch.manual_seed(0)
        theta = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
        optimizer = make([theta])
        for _ in range(6):
            optimizer.zero_grad()
            (theta ** 3 - theta).sum().backward()
            optimizer.step()
        paths.append(theta.detach())
    torch.testing.assert_close(paths[0], paths[1], rtol=1e-13, atol=1e-15)


# -- convergence of the first-order rules to their limits --------------------------------------
def test_ballistic_converges_with_order_one_to_the_gamma_zero_path(rng):
    scenario = problems.get("quadratic", H=random_spd(rng, 2, 10.0).tolist(), gamma=0.0)
    result = convergence_order("ballistic", scenario, 0.02, 50, scenario.analytic)
    assert 0.9 < result["order"] < 1.1
    assert result["errors"][0] > result["errors"][1] > result["errors"][2]


def test_gradient_descent_converges_with_order_one_to_the_overdamped_flow(rng):
    scenario = problems.get("quadratic", H=[1.0, 5.0], gamma=2.0)
    def reference(t):
        return limit_trajectory("gradient_descent", scenario, t)
    result = convergence_order("gradient_descent", scenario, 0.05, 40, reference)
    assert 0.9 < result["order"] < 1.1


def test_natural_gradient_converges_with_order_one_to_its_flow(rng):
    G = random_spd(rng, 2, 4.0) + 0.5 * np.eye(2)
    scenario = LinearQuadratic(np.diag([1.0, 3.0]), np.zeros(2), 3.0, G=G)
    def reference(t):
        return limit_trajectory("natural_gradient", scenario, t)
    result = convergence_order("natural_gradient", scenario, 0.05, 40, reference)
    assert 0.9 < result["order"] < 1.1


def test_gradient_descent_approaches_the_optimal_path_as_gamma_grows():
    errors = []
    for gamma in (3.0, 30.0, 300.0):
        scenario = problems.get("quadratic", H=[1.0, 4.0], gamma=gamma)
        horizon = 3 * gamma                     # the overdamped time scale γ/(ηkλ)
        t, path = run_rule("gradient_descent", scenario, horizon / 400, 400)
        errors.append(relative_error(scenario, t, path))
    assert errors[0] > errors[1] > errors[2]


def test_exact_rule_reports_nan_order_and_limit_of_optimal_rule_is_the_path(rng):
    scenario = problems.get("quadratic", H=[[2.0, 0.3], [0.3, 1.0]], gamma=1.0)
    result = convergence_order("optimal_quadratic", scenario, 0.3, 10, scenario.analytic)
    assert max(result["errors"]) <= EXACT and math.isnan(result["order"])
    t = np.linspace(0, 3, 7)
    np.testing.assert_allclose(limit_trajectory("optimal_quadratic", scenario, t), scenario.analytic(t),
                               atol=1e-9)


# -- runner API ----------------------------------------------------------------------------------
def test_run_rule_shapes_and_names():
    scenario = problems.get("quadratic", gamma=1.0)
    t, theta = run_rule("gradient_descent", scenario, 0.1, 5)
    assert t.shape == (6,) and theta.shape == (6, 2) and theta.dtype == np.float64
    np.testing.assert_allclose(t, 0.1 * np.arange(6))
    np.testing.assert_array_equal(theta[0], scenario.theta0)
    assert set(RULES) == {"optimal_quadratic", "ballistic", "natural_gradient", "drift_compensated",
                          "gradient_descent"}


@pytest.mark.parametrize("call, message", [
    (lambda s: run_rule("adam", s, 0.1, 5), "unknown rule"),
    (lambda s: run_rule("ballistic", s, 0.0, 5), "dt"),
    (lambda s: run_rule("ballistic", s, float("nan"), 5), "dt"),
    (lambda s: run_rule("ballistic", s, 0.1, 0), "steps"),
    (lambda s: run_rule("ballistic", s, 0.1, 5, theta0=[1.0]), "theta0"),
    (lambda s: run_rule("ballistic", s, 0.1, 5, colour="red"), "option"),
    (lambda s: run_rule("optimal_quadratic", s, 0.1, 5, gamma=-1.0), "gamma"),
    (lambda s: run_rule("gradient_descent", problems.get("quadratic", gamma=0.0), 0.1, 5), "gamma > 0"),
    (lambda s: run_rule("natural_gradient", problems.get("quadratic", gamma=0.0), 0.1, 5), "gamma > 0"),
    (lambda s: run_rule("optimal_quadratic", LinearQuadratic(np.eye(2), np.zeros(2), 1.0, A=-np.eye(2)), 0.1,
                        5),
     "drift_compensated"),
])
def test_run_rule_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(problems.get("quadratic", gamma=1.0))
