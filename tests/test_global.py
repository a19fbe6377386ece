"""Global optima among the basins (issue 15, item 5): ocp.solve_global and lossnav solve --global."""
import json

import numpy as np
import pytest

import ocp
from lossnav import cli

THETA0 = np.array([-0.6, 0.55])


def fig1_problem():
    """README's double well: L = (θ1² − 1)² + θ2² − 0.5θ1, γ = 0.1, free infinite horizon."""
    return ocp.DiscountedOCP(2, lambda th: (th[0] ** 2 - 1) ** 2 + th[1] ** 2 - 0.5 * th[0], gamma=0.1)


def test_fig1_free_infinite_horizon_reaches_the_global_well():
    problem = fig1_problem()
    local = ocp.solve(problem, THETA0)                    # the default guess: the nearer, left well
    best = ocp.solve_global(problem, THETA0)
    assert local.theta[-1, 0] == pytest.approx(-0.9304, abs=1e-3)
    assert best.theta[-1, 0] == pytest.approx(1.05745377, abs=1e-6)   # root of 4θ(θ² − 1) = 0.5
    assert abs(best.theta[-1, 1]) < 1e-8
    objectives = best.stats["candidate_objectives"]
    assert len(objectives) == len(best.stats["candidates"]) >= 3     # θ0 held + both minima
    assert best.objective == min(o for o in objectives if o is not None)
    assert objectives[best.stats["best_candidate"]] == best.objective
    assert best.objective < local.objective - 1.0
    minima = ocp.loss_minima(problem, THETA0)
    assert np.allclose(minima, [[1.05745377, 0], [-0.93040293, 0]], atol=1e-7)   # lowest loss first


def tilted_wells(c, gamma):
    """L = Σ_i (θ_i² − 1)² + c_i θ_i: two wells per coordinate, 2^D local minima."""
    def loss(theta, c):
        return sum((theta[i] ** 2 - 1) ** 2 + c[i] * theta[i] for i in range(theta.shape[0]))
    return ocp.DiscountedOCP(len(c), loss, gamma=gamma, constants={"c": np.asarray(c, float)})


def test_random_multiwell_best_basin_is_not_the_nearest():
    """Three coordinates with random tilts, θ0 in the shallow well of each: the nearest minimum is
    the all-shallow one, the optimum crosses where the tilt makes it pay. The chosen path has
    the lowest objective of an independent enumeration over all 2³ minima as guesses."""
    rng = np.random.default_rng(5)
    c = -rng.uniform(0.3, 0.8, 3) * rng.choice([-1, 1], 3)
    shallow = -np.sign(-c)                          # the well on the side the tilt raises
    theta0 = 0.9 * shallow + 0.05 * rng.normal(size=3)
    problem = tilted_wells(c, gamma=0.1)
    best = ocp.solve_global(problem, theta0, samples=64)
    minima = ocp.loss_minima(problem, theta0, samples=64)
    assert len(minima) == 8
    nearest = minima[np.argmin(np.linalg.norm(minima - theta0, axis=1))]
    assert np.linalg.norm(best.theta[-1] - nearest) > 0.5          # not the nearest basin
    enumerated = [ocp.solve(problem, theta0, guess=point).objective for point in minima]
    assert best.objective <= min(enumerated) + 1e-9 * abs(min(enumerated))
    assert best.objective < ocp.solve(problem, theta0, guess=nearest).objective


def test_candidates_in_processes_give_the_same_answer():
    problem = fig1_problem()
    serial = ocp.solve_global(problem, THETA0, samples=4)
    parallel = ocp.solve_global(problem, THETA0, samples=4, workers=2)
    assert parallel.objective == pytest.approx(serial.objective, rel=1e-12)
    candidates = serial.stats["candidate_objectives"]
    assert parallel.stats["candidate_objectives"] == pytest.approx(candidates, rel=1e-10)


def test_user_starts_and_finite_horizons():
    problem = fig1_problem()
    fixed = ocp.solve_global(problem, THETA0, horizon=4.0, terminal=[1.0625, 0.0], search=False,
                             starts=[[1.0, 0.0], [-1.0, 0.0]])
    plain = ocp.solve(problem, THETA0, horizon=4.0, terminal=[1.0625, 0.0])
    assert fixed.objective <= plain.objective + 1e-12
    assert [c["start"] for c in fixed.stats["candidates"]] == ["theta0 held", [1.0, 0.0], [-1.0, 0.0]]


def test_no_converged_candidate_is_a_solve_error():
    with pytest.raises(ocp.SolveError) as info:
        ocp.solve_global(fig1_problem(), THETA0, samples=1, ipopt={"max_iter": 1})
    assert info.value.status


@pytest.mark.parametrize("kwargs, message", [
    ({"starts": [[1.0, 2.0, 3.0]]}, "2 finite numbers"),
    ({"starts": [["a", "b"]]}, "point"),
    ({"workers": 0}, "workers"),
    ({"samples": -1}, "samples"),
    ({"radius": float("nan")}, "radius"),
    ({"guess": [1.0, 0.0]}, "starts="),
])
def test_bad_inputs_are_named_errors(kwargs, message):
    with pytest.raises(ocp.ProblemError, match=message):
        ocp.solve_global(fig1_problem(), THETA0, **kwargs)


def test_bad_theta0_is_a_problem_error():
    with pytest.raises(ocp.ProblemError, match="theta0"):
        ocp.solve_global(fig1_problem(), [0.0, 0.0, 0.0])


def test_cli_global_lists_every_candidate(capsys):
    assert cli.main(["solve", "double_well_2d", "--global", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["theta_final"][0] == pytest.approx(1.0575, abs=1e-3)
    objectives = [c["objective"] for c in summary["candidates"]]
    assert summary["objective"] == min(o for o in objectives if o is not None)
    assert cli.main(["solve", "double_well_2d", "--global", "--method", "analytic"]) == 2
    assert "--global applies to --method collocation" in capsys.readouterr().err
