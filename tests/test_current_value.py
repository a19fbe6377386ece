"""The current-value bridge of the infinite horizon (ocp/horizons/current_value.py) on problems nobody wrote.

References are independent of the engine: scipy's solve_bvp on the EL equations
(lossnav.validation.bvp_reference) for constant metrics without drift, and for the other
cases the engine's receding windows with the bridge switched off (a different method: one
discounted NLP per window, no Newton on the optimality conditions).
"""
from __future__ import annotations

import casadi
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocp
from lossnav.validation.bvp_reference import reference_path
from ocp.budget import TIME_LIMIT, Deadline
from ocp.horizons import current_value, current_value_collocation


def convex_problem(seed, dim, gamma, eta, k):
    """A random strictly convex, non-quadratic loss: logistic regression on random data plus a
    ridge and a quartic term, with a random SPD metric."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, dim))
    signs = np.where(rng.random(6) < 0.5, -1.0, 1.0)
    ridge, quartic = rng.uniform(0.05, 0.5), rng.uniform(0.0, 0.1)
    A = rng.standard_normal((dim, dim))
    metric = A @ A.T / dim + np.eye(dim)

    def loss(theta, X, signs):
        margins = casadi.mtimes(X, theta) * signs
        return (casadi.sum1(casadi.log(1 + casadi.exp(-margins))) / 6 + ridge / 2 * casadi.sumsqr(theta)
                + quartic * casadi.sum1(theta ** 4))

    problem = ocp.DiscountedOCP(dim, loss, gamma=gamma, eta=eta, k=k, metric=metric,
                                constants={"X": X, "signs": signs}, name=f"convex_{seed}")
    return problem, rng.uniform(-3, 3, dim)


def path_error(path, reference, rest, theta0, span):
    inside = path.t <= span
    return np.abs(path.theta[inside] - reference(path.t[inside])).max() / np.abs(theta0 - rest).max()


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 3),
       log_gamma=st.floats(np.log(0.05), np.log(100.0)), eta=st.floats(0.3, 3.0), k=st.floats(0.3, 3.0))
def test_infinite_horizon_matches_an_independent_bvp_reference(seed, dim, log_gamma, eta, k):
    problem, theta0 = convex_problem(seed, dim, float(np.exp(log_gamma)), eta, k)
    path = ocp.solve(problem, theta0)
    reference, rest, span = reference_path(problem, theta0)
    assert path.stats["success"] and path.stats["reached_rest"]
    assert np.abs(path.theta[-1] - rest).max() <= 1e-9 * max(1.0, np.abs(rest).max())
    assert path_error(path, reference, rest, theta0, span) <= 1e-7
    # the cost of a few NLPs: at most a handful of windows, never the policy integration
    assert path.stats["nlp_solves"].get("policy", 0) == 0
    assert path.stats["solves"] <= 4


@pytest.mark.parametrize("gamma", [2.0, 100.0])
def test_large_discount_needs_one_nlp_and_records_the_bridge(gamma):
    problem, theta0 = convex_problem(3, 2, gamma, 1.0, 1.0)
    path = ocp.solve(problem, theta0)
    reference, rest, span = reference_path(problem, theta0)
    assert path_error(path, reference, rest, theta0, span) <= 1e-7
    bridge = path.stats["current_value"]
    assert path.stats["solves"] == 1 and path.stats["tail"] == "lq"
    assert bridge["error_estimate"] <= current_value.MESH_TOLERANCE
    assert bridge["tail_bound"] <= ocp.horizons.infinite.TAIL_TOLERANCE
    assert bridge["spans"][-1] > 10 / gamma      # far beyond what one discounted window keeps


def test_a_bridge_that_does_not_converge_leaves_the_windows_to_carry_on(monkeypatch):
    problem, theta0 = convex_problem(5, 2, 0.7, 1.0, 1.0)
    monkeypatch.setattr(current_value_collocation, "NEWTON_STEPS", 0)      # Newton gives up at once
    path = ocp.solve(problem, theta0)
    reference, rest, span = reference_path(problem, theta0)
    assert path.stats["nlp_solves"]["windows"] > 0
    assert path_error(path, reference, rest, theta0, span) <= 1e-7


def test_bridge_agrees_with_the_windows_on_a_state_dependent_metric_and_a_drift(monkeypatch):
    """Beyond the BVP reference's reach: G(θ) depends on θ and a drift pulls towards a point."""
    def loss(theta):
        return (casadi.log(1 + casadi.exp(theta[0] - theta[1])) + 0.2 * casadi.sumsqr(theta)
                + 0.05 * theta[0] ** 4)

    def metric(theta):
        return casadi.diag(casadi.vertcat(1 + 0.3 * theta[0] ** 2, 2 + casadi.sin(theta[1]) ** 2))

    def drift(theta):
        return -0.1 * (theta - casadi.DM([0.5, -0.5]))

    problem = ocp.DiscountedOCP(2, loss, gamma=1.5, eta=0.8, k=1.2, metric=metric, drift=drift)
    theta0 = np.array([2.5, -2.0])
    bridged = ocp.solve(problem, theta0)
    assert "current_value" in bridged.stats and bridged.stats["current_value"]["tail_bound"] is not None
    monkeypatch.setattr(current_value_collocation, "NEWTON_STEPS", 0)
    windows = ocp.solve(problem.replace(), theta0)
    assert windows.stats["nlp_solves"]["windows"] > bridged.stats["nlp_solves"]["windows"]
    span = min(bridged.t[-1], windows.t[-1])
    times = np.linspace(0, span, 400)
    scale = np.abs(theta0 - bridged.theta[-1]).max()
    assert np.abs(bridged(times) - windows(times)).max() <= 1e-7 * scale


class _ExpiresInTheBridge(Deadline):
    def check(self, stage, iterations=0, best=None):
        if "current-value" in stage:
            self.end = 0.0
        super().check(stage, iterations, best)


def test_time_limit_inside_the_bridge_raises_with_the_path_so_far():
    problem, theta0 = convex_problem(7, 2, 5.0, 1.0, 1.0)
    with pytest.raises(ocp.SolveError) as caught:
        ocp.solve(problem, theta0, time_limit=_ExpiresInTheBridge(None))
    assert caught.value.status == TIME_LIMIT
    partial = caught.value.last_iterate
    assert partial is not None and partial.stats["success"] is False
    np.testing.assert_allclose(partial.theta[0], theta0)


def test_a_start_in_the_concave_part_of_a_well_heads_for_the_right_rest_point():
    """Tilted double wells at γ = 20, η = 0.05 from θ = 0.5 (concave part): the path crawls to the
    right well over ~300 time units. Newton on the rest condition from there stepped across the
    barrier to the left well, so the LQ tail and the bridge aimed at the wrong point and the
    engine fell back to 300 windows and ~800 policy solves (47 s at D = 10). The rest point is
    now the one the quasi-static flow reaches."""
    def loss(th):
        return casadi.sum1((th ** 2 - 1) ** 2 - 0.3 * th) + 0.02 * casadi.sumsqr(th)
    problem = ocp.DiscountedOCP(2, loss, gamma=20.0, eta=0.05, k=1.0)
    theta0 = np.array([0.5, 0.55])
    path = ocp.solve(problem, theta0, time_limit=60)
    reference, rest, span = reference_path(problem, theta0)
    assert rest.min() > 1.0                                        # the right well
    assert path.stats["solves"] == 1 and path.stats["tail"] == "lq"
    assert np.abs(path.theta[-1] - rest).max() <= 1e-9
    assert path_error(path, reference, rest, theta0, span) <= 1e-7


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 3), log_gamma=st.floats(np.log(0.01), np.log(5.0)),
       stretch=st.floats(1.5, 50.0))
def test_long_finite_horizons_follow_the_infinite_path_on_random_problems(seed, dim, log_gamma, stretch):
    """A finite horizon well past the time the path needs to settle: the optimal path equals the
    infinite-horizon one (to the free end's influence, below 1e-12 away from T) until near T.
    Whatever the engine does (one NLP, refined meshes, or the split at the end effect), the
    first half must match the independent BVP reference."""
    problem, theta0 = convex_problem(seed, dim, float(np.exp(log_gamma)), 1.0, 1.0)
    reference, rest, span = reference_path(problem, theta0)
    horizon = stretch * span            # span: 30 slowest decay times
    path = ocp.solve(problem, theta0, horizon=horizon)
    assert path.stats["success"] and path.t[-1] == pytest.approx(horizon, rel=1e-12)
    early = path.t <= min(0.5 * horizon, span)
    error = np.abs(path.theta[early] - reference(path.t[early])).max() / np.abs(theta0 - rest).max()
    assert error <= 1e-7


def test_the_search_ahead_for_the_rest_point_is_bounded(monkeypatch):
    """The quasi-static flow may spiral or crawl for ever: a budget of evaluations ends it (None:
    Newton's point stands), and the solve's time limit reaches inside it."""
    from ocp.budget import NO_DEADLINE
    from ocp.horizons import rest_point as rp

    def loss(th):
        return casadi.sum1((th ** 2 - 1) ** 2 - 0.3 * th) + 0.02 * casadi.sumsqr(th)
    problem = ocp.DiscountedOCP(1, loss, gamma=20.0, eta=0.05, k=1.0)
    params = problem.parameter_values()
    ahead = rp.rest_point_ahead(problem, np.array([0.5]), params, NO_DEADLINE)
    assert ahead is not None and ahead[0] == pytest.approx(1.0309, abs=1e-4)
    monkeypatch.setattr(rp, "MAX_FLOW_EVALUATIONS", 3)
    assert rp.rest_point_ahead(problem, np.array([0.5]), params, NO_DEADLINE) is None
    monkeypatch.undo()
    spent = Deadline(None)
    spent.end = 0.0
    with pytest.raises(ocp.SolveError, match="rest point"):
        rp.rest_point_ahead(problem, np.array([0.5]), params, spent)
