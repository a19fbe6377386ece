"""Finite horizons long against the path's time scales: right (split or refined) or refused.

The reference is the closed-form free-end path of a separable quadratic: per mode
θ(t) = A e^{r₊t} + B e^{r₋t}, r± = γ/2 ± √(γ²/4 + ηkλ), with θ(0) = θ0 and θ̇(T) = 0
(the transversality condition without drift), written with non-positive exponents only.
"""
from __future__ import annotations

import math

import casadi
import numpy as np
import pytest

import ocp
from ocp.horizons import mesh_refinement


def quadratic(h, gamma, offset=0.0):
    H = np.diag(h)

    def loss(th):
        return 0.5 * casadi.mtimes(th.T, casadi.mtimes(casadi.DM(H), th)) + offset
    return ocp.DiscountedOCP(len(h), loss, gamma=gamma)


def free_end_path(t, theta0, h, gamma, T):
    t = np.asarray(t, float)[:, None]
    root = np.sqrt(gamma ** 2 / 4 + np.asarray(h))
    plus, minus = gamma / 2 + root, gamma / 2 - root
    ratio = (minus / plus) * np.exp((minus - plus) * T)
    B = theta0 / (1 - ratio)
    # A e^{r₊t} = −B (r₋/r₊) e^{r₋T + r₊(t − T)}
    return B * np.exp(minus * t) - B * (minus / plus) * np.exp(minus * T + plus * (t - T))


@pytest.mark.parametrize("gamma", [0.0, 0.01, 1.0])
@pytest.mark.parametrize("horizon", [20.0, 30.0, 100.0, 1e4])
def test_long_finite_horizons_match_the_closed_form(gamma, horizon):
    """γ = 0, T = 1e4 returned a path 0.87 of its range away from the optimum, marked success."""
    h, theta0 = [1.0, 3.0], np.array([1.0, 1.0])
    path = ocp.solve(quadratic(h, gamma), theta0, horizon=horizon)
    assert path.stats["success"] and path.t[-1] == pytest.approx(horizon, rel=1e-14)
    exact = free_end_path(path.t, theta0, h, gamma, horizon)
    assert np.abs(path.theta - exact).max() <= 1e-8
    fine_enough = horizon / 40 * math.sqrt(3) <= 0.5    # the 40 default elements resolve the rate √3
    assert "mesh_refinement" in path.stats or "long_horizon" in path.stats or fine_enough


def test_the_refinement_is_recorded_and_meets_its_tolerance():
    h, theta0 = [1.0, 3.0], np.array([1.0, -2.0])
    path = ocp.solve(quadratic(h, 0.5), theta0, horizon=6.0, mesh_tol=1e-11)
    record = path.stats["mesh_refinement"]
    assert record["tol"] == 1e-11 and record["meshes"][-1]["estimate"] <= 1e-11
    assert path.stats["mesh"]["intervals"] == record["meshes"][-1]["intervals"] > 40
    assert path.stats["solves"] == len(record["meshes"])
    exact = free_end_path(path.t, theta0, h, 0.5, 6.0)
    assert np.abs(path.theta - exact).max() <= 1e-11 * np.abs(theta0).max()


def test_a_horizon_no_mesh_can_resolve_is_refused_with_the_reason():
    """γ = 0 with a loss whose minimum is not 0: no infinite-horizon path to split off, so the
    single NLP is refined, and on T = 1e4 no allowed mesh resolves the decay."""
    with pytest.raises(ocp.SolveError, match="mesh refinement did not reach") as caught:
        ocp.solve(quadratic([1.0, 3.0], 0.0, offset=1.0), [1.0, 1.0], horizon=1e4)
    assert caught.value.status == mesh_refinement.STATUS
    assert caught.value.last_iterate.stats["success"] is False


def test_mesh_tol_inf_keeps_the_single_nlp_and_bad_values_are_refused():
    problem = quadratic([1.0, 3.0], 0.0)
    single = ocp.solve(problem, [1.0, 1.0], horizon=100.0, mesh_tol=math.inf)
    assert "mesh_refinement" not in single.stats and single.stats["mesh"]["intervals"] == 40
    for bad in (0, -1e-8, float("nan"), "fine"):
        with pytest.raises(ocp.ProblemError, match="mesh_tol"):
            ocp.solve(problem, [1.0, 1.0], horizon=10.0, mesh_tol=bad)


def test_a_local_model_that_cannot_be_formed_leaves_the_mesh_as_given(monkeypatch):
    """A singular metric or a non-finite Hessian at θ0 must not turn into a LinAlgError."""
    def singular(problem, theta0):
        raise np.linalg.LinAlgError("Singular matrix")
    monkeypatch.setattr(ocp.nlp.local_model, "local_curvatures", singular)
    path = ocp.solve(quadratic([1.0, 3.0], 0.0), [1.0, 1.0], horizon=100.0)
    assert path.stats["success"] and "mesh_refinement" not in path.stats
    assert not mesh_refinement.suspect(quadratic([1.0], 0.0), np.ones(1), 1e4, ocp.Mesh(), np.array([np.nan]))
