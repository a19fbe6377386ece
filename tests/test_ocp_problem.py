"""The paper's Fig. 1 problem, verification helpers, persistence, re-solve and bad input."""
import math

import casadi
import numpy as np
import pytest

import ocp
from ocp.nlp.transcription import transcription_for

THETA0, TERMINAL = [-0.6, 0.55], [1.0625, 0.0]


def fig1_problem(gamma=0.1):
    return ocp.DiscountedOCP(2, lambda th: (th[0] ** 2 - 1) ** 2 + th[1] ** 2 - th[0] / 2,
                             gamma=gamma, eta=1.0, k=1.0)


def test_fig1_objective_is_mesh_converged():
    problem = fig1_problem()
    traj = ocp.solve(problem, THETA0, horizon=4.0, terminal=TERMINAL)
    reference = ocp.solve(problem, THETA0, horizon=4.0, terminal=TERMINAL, mesh=ocp.Mesh(80, 8))
    assert abs(traj.objective - reference.objective) <= 1e-9
    assert np.allclose(traj.theta[-1], TERMINAL, atol=1e-12)
    assert np.allclose(traj.theta[0], THETA0, atol=1e-12)
    residual = ocp.euler_lagrange_residual(problem, reference)
    assert np.abs(residual).max() <= 1e-6


def test_fig1_infinite_horizon_reaches_global_minimum():
    problem = fig1_problem()
    traj = ocp.solve(problem, THETA0, horizon=math.inf, guess=[[-0.93, 0.0], [1.0575, 0.0]])
    assert traj.theta[-1] == pytest.approx([1.0575, 0.0], abs=1e-3)
    assert traj.objective == min(traj.stats["candidate_objectives"])


def test_mesh_convergence_errors_fall():
    rows = ocp.mesh_convergence(fig1_problem(), THETA0, [ocp.Mesh(10, 3), ocp.Mesh(20, 4), ocp.Mesh(40, 5)],
                                horizon=4.0, terminal=TERMINAL)
    errors = [row["objective_error"] for row in rows]
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 1e-10


def test_save_load_round_trip(tmp_path):
    traj = ocp.solve(fig1_problem(), THETA0, horizon=4.0, terminal=TERMINAL, mesh=ocp.Mesh(10, 3))
    traj.save(tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz") as data:
        assert {"t", "theta", "velocity", "kinetic", "potential", "costate", "objective"} <= set(data.files)
    loaded = ocp.Trajectory.load(tmp_path / "x.npz")
    assert np.array_equal(loaded.theta, traj.theta) and loaded.objective == traj.objective
    assert np.allclose(loaded(1.234), traj(1.234))
    (tmp_path / "bad.npz").write_bytes(b"not a file")
    with pytest.raises(ocp.FileFormatError, match="bad.npz: not a saved lossnav trajectory"):
        ocp.Trajectory.load(tmp_path / "bad.npz")


def test_resolve_after_parameter_change_does_not_rebuild():
    problem = fig1_problem()
    first = ocp.solve(problem, THETA0, horizon=4.0, terminal=TERMINAL)
    built = transcription_for(problem, ocp.Mesh(), False, True)
    changed = problem.replace(gamma=0.5)
    second = ocp.solve(changed, THETA0, horizon=4.0, terminal=TERMINAL, guess=first)
    assert transcription_for(changed, ocp.Mesh(), False, True) is built
    assert second.objective != first.objective
    fresh = ocp.solve(fig1_problem(gamma=0.5), THETA0, horizon=4.0, terminal=TERMINAL)
    assert second.objective == pytest.approx(fresh.objective, abs=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    ({"gamma": -0.1}, "gamma"), ({"eta": 0.0}, "eta"), ({"k": -1.0}, "k"),
    ({"gamma": float("nan")}, "gamma"),
    ({"metric": [[1.0, 2.0], [2.0, 1.0]]}, "positive definite"),
    ({"metric": np.eye(3)}, "shape"),
    ({"metric": [[1.0, 0.5], [0.0, 1.0]]}, "symmetric"),
])
def test_bad_problem_parameters(kwargs, match):
    with pytest.raises(ocp.ProblemError, match=match):
        ocp.DiscountedOCP(2, lambda th: th[0] ** 2 + th[1] ** 2, **kwargs)


def test_bad_loss_functions():
    with pytest.raises(ocp.ProblemError, match="shape"):
        ocp.DiscountedOCP(2, lambda th: th)                      # not scalar
    with pytest.raises(ocp.ProblemError, match="CasADi symbols"):
        ocp.DiscountedOCP(2, lambda th: math.exp(th[0]))         # silently nan on symbols
    with pytest.raises(ocp.ProblemError, match="CasADi symbols"):
        ocp.DiscountedOCP(2, lambda th: th[0] if th[0] > 0 else -th[0])  # branching on symbols
    with pytest.raises(ocp.ProblemError, match="callable"):
        ocp.DiscountedOCP(2, "x**2")
    problem = ocp.DiscountedOCP(1, lambda th: casadi.exp(th[0]) + casadi.sin(th[0]) ** 2)
    assert problem.dim == 1


@pytest.mark.parametrize("theta0", [[1.0], [1.0, 2.0, 3.0], [np.nan, 0.0], [np.inf, 1.0], "ab"])
def test_bad_initial_state(theta0):
    with pytest.raises(ocp.ProblemError, match="theta0"):
        ocp.solve(fig1_problem(), theta0, horizon=1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"horizon": math.inf, "terminal": TERMINAL}, "needs a finite horizon"),
    ({"horizon": 4.0, "terminal": [1.0]}, "terminal must have length 2"),
    ({"horizon": 4.0, "terminal": [np.nan, 0.0]}, "terminal must be finite"),
])
def test_bad_terminal(kwargs, message):
    with pytest.raises(ocp.TerminalConstraintError, match=message):
        ocp.solve(fig1_problem(), THETA0, **kwargs)


@pytest.mark.parametrize("horizon", [0.0, -1.0, "soon"])
def test_bad_horizon(horizon):
    with pytest.raises(ocp.ProblemError, match="horizon"):
        ocp.solve(fig1_problem(), THETA0, horizon=horizon)


def test_ipopt_failure_carries_status_and_last_iterate():
    problem = fig1_problem()
    with pytest.raises(ocp.SolveError) as info:
        ocp.solve(problem, THETA0, horizon=4.0, terminal=TERMINAL, ipopt={"max_iter": 1})
    assert info.value.status == "Maximum_Iterations_Exceeded"
    assert info.value.iterations == 1
    assert info.value.last_iterate is not None and not info.value.last_iterate.stats["success"]


def test_gamma_zero_requires_vanishing_loss_at_limit():
    with pytest.raises(ocp.ProblemError, match="gamma = 0"):
        ocp.solve(fig1_problem(gamma=0.0), THETA0, horizon=math.inf, mesh=ocp.Mesh(20, 4))


def test_gamma_zero_requires_vanishing_drift_cost_at_limit():
    """L = ½|θ|² vanishes at its minimum, but a constant drift keeps (1/2η)|θ̇ − f|² > 0 at
    rest: the infinite-horizon objective with γ = 0 diverges and the solve must say so."""
    problem = ocp.DiscountedOCP(1, lambda th: 0.5 * th[0] ** 2, gamma=0.0,
                                drift=lambda th: casadi.DM([0.3]))
    with pytest.raises(ocp.ProblemError, match="drift cost"):
        ocp.solve(problem, [1.0], horizon=math.inf, mesh=ocp.Mesh(20, 4))
