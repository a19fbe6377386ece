"""ocp.RecedingHorizonController: the closed loop tends to the open-loop infinite-horizon optimum as
T_h grows (exponential discounting is time-consistent); failures fall back, never raise."""
import math

import numpy as np
import pytest

import ocp
import problems

DT, STEPS = 0.1, 30
WELL = [1.0575, 0.0]   # global minimum of double_well_2d: guess of the first plan


def _closed_loop_errors(problem, theta0, horizons, guess=None):
    reference = ocp.solve(problem, theta0, guess=guess)
    errors = []
    for horizon in horizons:
        mpc = ocp.RecedingHorizonController(problem, plan_horizon=horizon, dt=DT, guess=guess)
        closed = mpc.run(theta0, steps=STEPS)
        assert closed.stats["fallbacks"] == 0 and closed.stats["solves"] == STEPS
        errors.append(np.abs(closed.theta - reference(closed.t)).max())
    return errors


@pytest.mark.parametrize("name, params, theta0, guess", [
    ("quadratic", {"H": [1, 10], "gamma": 1.0}, None, None),
    ("double_well_2d", {}, [-0.6, 0.55], WELL),
])
def test_closed_loop_approaches_open_loop_optimum(name, params, theta0, guess):
    scenario = problems.get(name, **params)
    theta0 = scenario.theta0 if theta0 is None else np.asarray(theta0, float)
    finite = _closed_loop_errors(scenario.problem, theta0, [2.0, 4.0, 8.0], guess)
    assert finite[0] > finite[1] > finite[2]
    assert finite[2] <= 1e-5
    infinite, = _closed_loop_errors(scenario.problem, theta0, [math.inf], guess)
    assert infinite <= 1e-5


def test_step_applies_the_plan_polynomial():
    problem = problems.get("quadratic", H=[1, 10], gamma=1.0).problem
    mpc = ocp.RecedingHorizonController(problem, plan_horizon=3.0, dt=0.25)
    theta = np.array([1.0, -1.0])
    theta_next, plan = mpc.step(theta, t=2.0)
    assert plan.t[0] == pytest.approx(2.0)
    np.testing.assert_allclose(plan(2.0), theta, atol=1e-10)
    np.testing.assert_allclose(theta_next, plan(2.25), atol=0)
    assert mpc.stats["solves"] == 1 and mpc.stats["fallbacks"] == 0


def test_iteration_budget_forces_counted_fallbacks():
    problem = problems.get("double_well_2d").problem
    theta0 = np.array([-0.6, 0.55])
    mpc = ocp.RecedingHorizonController(problem, plan_horizon=4.0, dt=DT, max_iter=1)
    closed = mpc.run(theta0, steps=10)
    assert closed.stats["fallbacks"] == closed.stats["gradient_fallbacks"] == 10
    assert all("Maximum_Iterations_Exceeded" in f["reason"] for f in closed.stats["failures"])
    assert np.all(np.isfinite(closed.theta))
    assert closed.potential[-1] < closed.potential[0]   # the gradient fallback descends


def test_failed_solve_continues_along_previous_plan(monkeypatch):
    problem = problems.get("double_well_2d").problem
    mpc = ocp.RecedingHorizonController(problem, plan_horizon=4.0, dt=DT, guess=WELL)
    theta1, plan = mpc.step([-0.6, 0.55], t=0.0)
    failed = {"success": False, "status": "Invented_Failure", "iterations": 0, "solve_time": 0.0}
    monkeypatch.setattr(mpc.transcription, "solve", lambda *args, **kwargs: failed)
    theta2, followed = mpc.step(theta1, t=DT)
    assert followed is plan
    np.testing.assert_allclose(theta2, plan(2 * DT), atol=0)
    assert mpc.stats["fallbacks"] == 1 and mpc.stats["gradient_fallbacks"] == 0


def test_an_exhausted_budget_falls_back_without_raising():
    """max_iter = 1: IPOPT stops at its budget on every plan whatever the machine's speed (the
    CPU-time threshold max_time = 1e-6 s this replaces depended on the clock); the same
    controller with room to converge does not fall back."""
    problem = problems.get("double_well_2d").problem
    mpc = ocp.RecedingHorizonController(problem, plan_horizon=math.inf, dt=DT, max_iter=1)
    closed = mpc.run([-0.6, 0.55], steps=3)
    assert closed.stats["fallbacks"] == 3 and np.all(np.isfinite(closed.theta))
    roomy = ocp.RecedingHorizonController(problem, plan_horizon=math.inf, dt=DT, max_iter=500)
    assert roomy.run([-0.6, 0.55], steps=1).stats["fallbacks"] == 0


@pytest.mark.parametrize("bad", [
    {"dt": 0.0}, {"dt": -0.1}, {"dt": math.nan}, {"plan_horizon": 0.0}, {"plan_horizon": -1.0},
    {"plan_horizon": 0.5, "dt": 1.0}, {"max_iter": 0}, {"max_iter": "many"}, {"max_time": 0.0},
])
def test_bad_input_raises_problem_error(bad):
    problem = problems.get("quadratic").problem
    with pytest.raises(ocp.ProblemError, match=f"^{list(bad)[-1]} "):   # the message names the bad argument
        ocp.RecedingHorizonController(problem, **{"plan_horizon": 2.0, "dt": 0.1, **bad})
