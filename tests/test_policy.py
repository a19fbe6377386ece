"""The stationary policy of the infinite horizon (ocp.horizons.policy): exact Jacobian, exprb43."""
import math

import casadi
import numpy as np
import pytest

import ocp
from ocp.horizons.policy import Policy, integrate, phi_functions
from ocp.nlp.local_model import default_time_scale
from ocp.nlp.time_maps import window_end
from ocp.nlp.transcription import transcription_for


def _policy(problem, theta0):
    mesh = ocp.Mesh(intervals=20, degree=5)
    tr = transcription_for(problem, mesh, True, False)
    scale = default_time_scale(problem, np.asarray(theta0, float))
    s_end = window_end(scale, problem.gamma)
    raw = tr.solve(np.asarray(theta0, float), problem.parameter_values(), scale, None, None, s_end)
    assert raw["success"]
    return Policy(problem, tr, scale, s_end, raw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_jacobian_is_exact(seed):
    """KKT sensitivity against central differences of π on a non-quadratic, coupled loss."""
    rng = np.random.default_rng(seed)
    gamma = float(rng.uniform(0.3, 3.0))
    c = rng.uniform(0.5, 2.0, size=2)
    problem = ocp.DiscountedOCP(2, lambda th: (th[0] ** 2 - 1) ** 2 + c[0] * th[1] ** 2
                                + 0.3 * c[1] * th[0] * th[1] - 0.5 * th[0], gamma=gamma)
    theta = np.array([0.6, 0.3]) + 0.1 * rng.standard_normal(2)
    policy = _policy(problem, theta)
    exact = policy.jacobian(0.0, theta)
    fd = np.empty((2, 2))
    for j in range(2):
        e = np.zeros(2)
        e[j] = 1e-5
        fd[:, j] = (policy(0.0, theta + e) - policy(0.0, theta - e)) / 2e-5
    assert np.abs(exact - fd).max() <= 1e-6 * np.abs(exact).max()


def test_policy_jacobian_of_quadratic_is_R():
    """For L = ½θᵀHθ the policy is θ̇ = Rθ with R = (γ/2)I − (γ²/4 I + ηkH)^{1/2} (App. C.1)."""
    from scipy.linalg import sqrtm
    H = np.array([[3.0, 1.0], [1.0, 2.0]])
    gamma, eta = 0.8, 1.5
    problem = ocp.DiscountedOCP(2, lambda th, H: 0.5 * th.T @ H @ th, gamma=gamma, eta=eta,
                                constants={"H": H})
    policy = _policy(problem, np.array([1.0, -1.0]))
    R = gamma / 2 * np.eye(2) - sqrtm(gamma ** 2 / 4 * np.eye(2) + eta * H).real
    assert np.abs(policy.jacobian(0.0, np.array([0.3, 0.2])) - R).max() <= 1e-9


def test_phi_functions_match_series():
    rng = np.random.default_rng(3)
    A = 0.3 * rng.standard_normal((3, 3))
    phis = phi_functions(A, 4)
    for k, phi in enumerate(phis):
        series = sum(np.linalg.matrix_power(A, j) / math.factorial(j + k) for j in range(30))
        assert np.abs(phi - series).max() <= 1e-14


class _Bernoulli:
    """θ̇ = −θ + θ², θ(t) = 1/(1 + (1/θ0 − 1)eᵗ): a nonlinear policy with a closed form."""

    def __call__(self, t, theta):
        return -theta + theta ** 2

    def jacobian(self, t, theta):
        return np.diag(-1 + 2 * theta)


@pytest.mark.parametrize("rtol", [1e-6, 1e-8, 1e-10])
def test_exprb43_meets_its_tolerance_on_a_nonlinear_policy(rtol):
    theta0 = np.array([0.5, 0.9, -2.0])
    t, theta, at_rest = integrate(_Bernoulli(), 0.0, theta0, rest_speed=1e-12, rtol=rtol, atol=1e-3 * rtol)
    exact = 1 / (1 + np.outer(np.exp(t), 1 / theta0 - 1))
    assert at_rest
    assert np.abs(theta - exact).max() <= 50 * rtol


def test_exprb43_is_exact_on_a_stiff_linear_policy():
    """Curvature spread 1e6: one step spans every rate, exact up to round-off (φ-functions)."""
    A = np.diag([-1e-3, -1.0, -1e3])

    class Linear:
        def __call__(self, t, theta):
            return A @ theta

        def jacobian(self, t, theta):
            return A

    theta0 = np.ones(3)
    t, theta, _ = integrate(Linear(), 0.0, theta0, rest_speed=1e-9)
    exact = np.exp(np.outer(t, np.diag(A)))
    assert np.abs(theta - exact).max() <= 1e-12
    assert len(t) < 40 * 7, "an exact integrator must not be step-limited by stiffness"


def test_policy_continuation_agrees_with_collocation_from_a_later_state():
    """Time consistency: at γ = 10 the first collocated window ends at t ≈ 0.46 and the rest
    comes from later windows and the LQ tail (``ocp.horizons.infinite``); a fresh collocation solve
    from θ(t1) must continue the same path."""
    problem = ocp.DiscountedOCP(2, lambda th: (th[0] ** 2 - 1) ** 2 + th[1] ** 2 - 0.5 * th[0], gamma=10.0)
    traj = ocp.solve(problem, [-0.6, 0.55], horizon=math.inf, mesh=ocp.Mesh(20, 5), rest_tol=1e-6)
    t1 = 3.0
    assert traj.stats["reached_rest"] and traj.stats["nlp_solves"]["first_window"] == 1
    assert traj.stats["tail"] in ("lq", "policy")      # the path at t1 is past the first window
    later = ocp.solve(problem, traj(t1), horizon=math.inf, mesh=ocp.Mesh(20, 5), rest_tol=1e-6)
    window = later.t[later.t <= later.stats.get("policy_from", later.t[-1])]
    assert np.abs(traj(t1 + window) - later(window)).max() <= 1e-9


class _MovingTarget(ocp.DiscountedOCP):
    """L(θ, t) = ½(θ − a·e^{−bt})²: a loss that depends on time (the target drifts to 0)."""

    def loss_value(self, theta, params, t=None):
        target = params["a"] * casadi.exp(-params["b"] * (0.0 if t is None else t))
        return 0.5 * casadi.sumsqr(theta - target)


def test_time_dependent_loss_is_continued_with_its_clock():
    """EL: θ̈ − γθ̇ = ηk(θ − a e^{−bt}); the stable solution is θ = A e^{−bt} + (θ0 − A) e^{rt},
    A = ηk a/(ηk − b² − γb), r = γ/2 − (γ²/4 + ηk)^{1/2}. γ = 5 ends the collocated window at
    t ≈ 0.9, so almost all of the path comes from the (non-autonomous) policy."""
    gamma, eta, k, a, b = 5.0, 1.0, 1.0, 1.0, 0.3
    problem = _MovingTarget(1, lambda th, a, b: 0.5 * th[0] ** 2, gamma=gamma, eta=eta, k=k,
                            constants={"a": a, "b": b})
    theta0 = np.array([2.0])
    traj = ocp.solve(problem, theta0, horizon=math.inf, mesh=ocp.Mesh(20, 5), rest_tol=1e-6)
    assert traj.stats["reached_rest"] and traj.stats["policy_from"] < 1.0
    A = eta * k * a / (eta * k - b ** 2 - gamma * b)
    r = gamma / 2 - math.sqrt(gamma ** 2 / 4 + eta * k)
    exact = A * np.exp(-b * traj.t) + (theta0[0] - A) * np.exp(r * traj.t)
    assert traj.t[-1] > 20.0
    assert np.abs(traj.theta[:, 0] - exact).max() <= 1e-7 * abs(theta0[0])


@pytest.mark.parametrize("horizon", [math.inf, 4.0])
def test_solve_from_a_later_clock_continues_the_time_dependent_path(horizon):
    """``ocp.solve(..., t0=t1)`` starts the problem's clock at t1: from θ(t1) of the closed
    form it must continue the same path, θ(t) = A e^{−bt} + (θ(t1) − A e^{−bt1}) e^{r(t−t1)}
    (infinite horizon), with times running from t1. At t0 = 0 the target would be wrong by
    a(1 − e^{−bt1}), far above the tolerance."""
    gamma, eta, k, a, b, t1 = 5.0, 1.0, 1.0, 1.0, 0.3, 2.5
    problem = _MovingTarget(1, lambda th, a, b: 0.5 * th[0] ** 2, gamma=gamma, eta=eta, k=k,
                            constants={"a": a, "b": b})
    A = eta * k * a / (eta * k - b ** 2 - gamma * b)
    r = gamma / 2 - math.sqrt(gamma ** 2 / 4 + eta * k)
    start = A * math.exp(-b * t1) + (2.0 - A) * math.exp(r * t1)
    traj = ocp.solve(problem, [start], horizon=horizon, mesh=ocp.Mesh(20, 5), rest_tol=1e-6, t0=t1)
    assert traj.t[0] == t1 and traj.stats["t0"] == t1
    window = traj.t[traj.t <= t1 + 1.5]   # a finite horizon's free end bends the path near t1 + 4
    exact = A * np.exp(-b * window) + (start - A * math.exp(-b * t1)) * np.exp(r * (window - t1))
    assert np.abs(traj(window)[:, 0] - exact).max() <= 1e-7
    if math.isinf(horizon):
        assert traj.stats["reached_rest"] and traj.t[-1] > t1 + 20.0
        exact_all = A * np.exp(-b * traj.t) + (start - A * math.exp(-b * t1)) * np.exp(r * (traj.t - t1))
        assert np.abs(traj.theta[:, 0] - exact_all).max() <= 1e-7


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "soon", None])
def test_solve_refuses_a_bad_start_clock(bad):
    problem = ocp.DiscountedOCP(1, lambda th: 0.5 * th[0] ** 2, gamma=1.0)
    with pytest.raises(ocp.ProblemError, match="t0"):
        ocp.solve(problem, [1.0], horizon=2.0, t0=bad)


def test_receding_windows_follow_the_clock_of_a_time_dependent_loss():
    """ocp.control.receding.receding_windows re-solves each window from the problem's clock there
    (ocp.solve t0): on the moving target it reproduces the infinite-horizon closed form over
    several windows, and records each window's mesh, all converged."""
    from ocp.control.receding import receding_windows
    gamma, eta, k, a, b = 5.0, 1.0, 1.0, 1.0, 0.3
    problem = _MovingTarget(1, lambda th, a, b: 0.5 * th[0] ** 2, gamma=gamma, eta=eta, k=k,
                            constants={"a": a, "b": b})
    path = receding_windows(problem, [2.0], 3.5)
    A = eta * k * a / (eta * k - b ** 2 - gamma * b)
    r = gamma / 2 - math.sqrt(gamma ** 2 / 4 + eta * k)
    t = np.linspace(0.0, 3.5, 71)
    exact = A * np.exp(-b * t) + (2.0 - A) * np.exp(r * t)
    assert len(path.stats["window_meshes"]) == 4 and path.stats["unconverged_windows"] == []
    assert np.abs(path(t)[:, 0] - exact).max() <= 1e-7


def test_junction_mismatch_flags_an_under_resolved_window_end():
    """belief_adam at γ = 0.5: the stream still varies where the default mapped mesh's elements
    are long, so θ̇ of the collocated window's end and the policy's π there differ; the gap
    shrinks with the mesh. On a quadratic both are exact (NLP tolerance)."""
    import problems
    scenario = problems.get("belief_adam", gamma=0.5)
    coarse, fine = (ocp.solve(scenario.problem, scenario.theta0, mesh=ocp.Mesh(n, 5))
                    .stats["junction_mismatch"] for n in (40, 80))
    assert coarse > 1e-4 and fine < coarse / 20, (coarse, fine)
    quadratic = ocp.DiscountedOCP(2, lambda th: 2.0 * th[0] ** 2 + 0.1 * th[1] ** 2, gamma=1.0)
    path = ocp.solve(quadratic, [1.0, 1.0], mesh=ocp.Mesh(20, 5))
    assert path.stats["junction_mismatch"] <= 1e-7
