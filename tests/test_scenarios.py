"""The four scenarios double_well, natural_gradient, rotation and weight_decay: closed forms
against collocation and against the general linear–quadratic reference, the corrections to
the printed formulas (docs/discrepancies.md), bad input, and the torch views of the loss."""
import math

import casadi
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import ocp
from ocp.results.verification import euler_lagrange_error
from problems import linear_quadratic
from problems.double_well import DoubleWellScenario
from problems.natural_gradient import NaturalGradientScenario
from problems.quadratic import QuadraticScenario
from problems.rotation import RotationScenario
from problems.weight_decay import WeightDecayScenario

SMALL = ocp.Mesh(20, 5)
ROTATION_J = np.array([[0.0, -1.0], [1.0, 0.0]])


def relative_error(scenario, trajectory, theta0) -> float:
    """max |θ_colloc − θ_exact| / |θ0 − θ*| over the times until the exact path has converged
    to 1e-6 of the initial distance (the path must get there)."""
    exact = scenario.analytic(trajectory.t, theta0)
    fixed = scenario.fixed_point()
    scale = np.linalg.norm(theta0 - fixed)
    distance = np.linalg.norm(exact - fixed, axis=1) / scale
    assert distance.min() <= 1e-6, "the collocation path must reach convergence"
    relevant = distance >= 1e-6
    return float(np.abs(trajectory.theta - exact).max(axis=1)[relevant].max() / scale)


def case(cls, gamma, seed=None, **params):
    """A scenario at γ, with its paper defaults or a seeded random draw, and its θ0."""
    if seed is None:
        scenario = cls(gamma=gamma, **params)
        return scenario, scenario.theta0
    rng = np.random.default_rng(seed)
    scenario = cls(gamma=gamma, **cls().random_params(rng), **params)
    return scenario, scenario.random_theta0(rng)


# (scenario class, γ, random seed or None for the paper's defaults, extra parameters, mesh)
CASES = [
    (DoubleWellScenario, 0.0, None, {}, SMALL),
    (DoubleWellScenario, 0.0, 11, {}, SMALL),
    (NaturalGradientScenario, 0.0, None, {}, SMALL),
    (NaturalGradientScenario, 1.0, 12, {}, SMALL),
    (NaturalGradientScenario, 10.0, 13, {}, SMALL),
    (RotationScenario, 0.0, None, {}, ocp.Mesh(200, 5)),   # q = 10: eleven turns before 1e-6
    (RotationScenario, 1.0, 14, {}, None),
    (RotationScenario, 0.1, 15, {}, None),
    (WeightDecayScenario, 1.0, None, {}, SMALL),
    (WeightDecayScenario, 0.0, 16, {}, SMALL),
    (WeightDecayScenario, 10.0, 17, {}, SMALL),
]
_solved = {}


def solved(index):
    if index not in _solved:
        cls, gamma, seed, params, mesh = CASES[index]
        scenario, theta0 = case(cls, gamma, seed, **params)
        guess = scenario.guesses() or None
        _solved[index] = scenario, theta0, ocp.solve(scenario.problem, theta0, mesh=mesh, guess=guess)
    return _solved[index]


def case_id(entry):
    cls, gamma, seed, _, mesh = entry
    return f"{cls.name}-gamma{gamma}-{'paper' if seed is None else f'seed{seed}'}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case_id(entry) for entry in CASES])
def test_analytic_matches_collocation(index):
    scenario, theta0, trajectory = solved(index)
    assert scenario.has_analytic()
    assert relative_error(scenario, trajectory, theta0) <= 1e-6


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case_id(entry) for entry in CASES])
def test_collocation_satisfies_euler_lagrange(index):
    scenario, _, trajectory = solved(index)
    assert euler_lagrange_error(scenario.problem, trajectory) <= 2e-3


# -- the linear–quadratic closed forms against the general Schur reference -------------
def reference(scenario):
    """θ* and R from problems/linear_quadratic.py for the scenario's H, G, A."""
    p = scenario.params
    if scenario.name == "rotation":
        H, G, A = p["h"] * np.eye(2), None, p["q"] * ROTATION_J
    elif scenario.name == "weight_decay":
        H, G, A = np.array(p["H"]), None, -p["j"] * np.eye(len(p["H"]))
    else:
        H, G, A = np.array(p["H"]), np.array(p["G"]), None
    fixed = linear_quadratic.fixed_point(H, p["mu"], p["gamma"], p["eta"], p["k"], G=G, A=A)
    return fixed, linear_quadratic.feedback_matrix(H, p["gamma"], p["eta"], p["k"], G=G, A=A)


@pytest.mark.parametrize("cls", [NaturalGradientScenario, RotationScenario, WeightDecayScenario])
@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_closed_form_matches_linear_quadratic_reference(cls, gamma, seed):
    scenario, theta0 = case(cls, gamma, seed)
    fixed, R = reference(scenario)
    t = np.linspace(0.0, 3.0, 31)
    scale = np.linalg.norm(theta0 - fixed)
    assert np.abs(scenario.fixed_point() - fixed).max() <= 1e-12 * max(1.0, np.abs(fixed).max())
    exact = linear_quadratic.trajectory(t, theta0, R, fixed)
    assert np.abs(scenario.analytic(t, theta0) - exact).max() <= 1e-11 * scale


# -- double well ---------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"h": 2.0, "theta_star": 1.3, "q": -0.8, "eta": 0.7, "k": 1.6}])
def test_double_well_closed_form_solves_the_energy_rule(params):
    """θ̇ = sign(θ_min − θ0)·√(2ηkL) integrated in u = ln|θ − θ_min| (no stiffness near the
    exponential approach) agrees with the inverted closed-form t(θ) to the ODE's accuracy."""
    scenario = DoubleWellScenario(**params)
    minimum, theta0 = scenario.fixed_point()[0], scenario.theta0[0]
    side = math.copysign(1.0, theta0 - minimum)
    b, c = scenario.factor()
    kappa = math.sqrt(scenario.params["eta"] * scenario.params["k"] * scenario.params["h"] / 2)

    def rate(_, y):
        u = side * math.exp(y[0])
        return [-kappa * math.sqrt(u * u + b * u + c)]

    t = np.linspace(0.0, 15.0, 61)
    solution = solve_ivp(rate, (0.0, 15.0), [math.log(abs(theta0 - minimum))], t_eval=t,
                         method="DOP853", rtol=1e-13, atol=1e-13)
    integrated = minimum + side * np.exp(solution.y[0])
    assert np.abs(scenario.analytic(t)[:, 0] - integrated).max() <= 1e-10
    # the path obeys the rule itself: θ̇ from the closed form's derivative
    theta = scenario.analytic(t)[:, 0]
    step = 1e-6
    derivative = (scenario.analytic(t + step)[:, 0] - scenario.analytic(np.maximum(t - step, 0))[:, 0])
    derivative /= np.where(t > 0, 2 * step, step)
    assert np.allclose(derivative[1:], scenario.analytic_velocity(theta)[1:], rtol=1e-6, atol=1e-9)


def test_double_well_minima_and_offset():
    """L = 0 at the global minimum only; for q > 0 it is θ₊, for q < 0 θ₋ (App. C.2)."""
    for q in (0.5, -0.5):
        scenario = DoubleWellScenario(q=q)
        (global_min,), (local_min,) = scenario.minima()
        assert math.copysign(1.0, global_min) == math.copysign(1.0, q)
        assert abs(_loss_at(scenario, global_min)) <= 1e-15 and _loss_at(scenario, local_min) > 0.3
        # the energy solution θ̇ = ±√(2ηkL) (C.2): zero at the global minimum, √(2ηkL(θ₋)) towards it
        # at the local one (this replaces θ̇² ≥ 0 at the global minimum, which cannot fail)
        at_global, at_local = scenario.analytic_velocity(np.array([global_min, local_min]))
        eta_k = scenario.problem.eta * scenario.problem.k
        assert abs(at_global) <= 1e-12
        assert at_local == pytest.approx(math.copysign(math.sqrt(2 * eta_k * _loss_at(scenario, local_min)),
                                                       global_min - local_min), rel=1e-12)


def _loss_at(scenario, x):
    """The scenario's torch loss at the one-dimensional point ``x``, as a float."""
    return float(scenario.torch_loss(torch.tensor([x], dtype=torch.float64)))


def test_double_well_short_horizon_stays_in_the_shallow_well():
    """γ = 0 crosses the barrier to the global minimum; γ = 1 settles in the nearer well."""
    far_sighted, near_sighted = DoubleWellScenario(gamma=0.0), DoubleWellScenario(gamma=1.0)
    assert not near_sighted.has_analytic()
    with pytest.raises(NotImplementedError):
        near_sighted.analytic(1.0)
    end = ocp.solve(near_sighted.problem, near_sighted.theta0, mesh=SMALL, guess=near_sighted.guesses())
    assert end.theta[-1] == pytest.approx(near_sighted.minima()[1], abs=1e-8)
    assert far_sighted.analytic(200.0) == pytest.approx(far_sighted.fixed_point(), abs=1e-12)


# -- pinned corrections of the printed formulas (docs/discrepancies.md) -----------------
def printed_weight_decay(scenario):
    """Eqs. 124–125 as printed: the drag j(j − γ) instead of j(j + γ)."""
    p = scenario.params
    curvature, vectors = np.linalg.eigh(np.array(p["H"]))
    stiffness = p["eta"] * p["k"] * curvature
    drag = p["j"] * (p["j"] - p["gamma"])
    rates = p["gamma"] / 2 - np.sqrt(p["gamma"] ** 2 / 4 + drag + stiffness)
    fixed = vectors @ (stiffness / (stiffness + drag) * (vectors.T @ np.array(p["mu"])))
    return rates, fixed


def test_weight_decay_printed_drag_sign_is_wrong():
    """At γ = 1 (Fig. 3 values otherwise) collocation comes to rest at ηkH[ηkH + j(j+γ)]⁻¹μ
    = (0, −0.017544), not at the printed (0, −0.021277); the rate is −10.1888, not −9.2082."""
    scenario, theta0, trajectory = solved(8)
    printed_rates, printed_fixed = printed_weight_decay(scenario)
    rates, _, _ = scenario.spectrum()
    assert trajectory.theta[-1] == pytest.approx(scenario.fixed_point(), abs=1e-9)
    assert scenario.fixed_point() == pytest.approx([0.0, -0.5 * 4 / 114], abs=1e-15)
    assert np.abs(trajectory.theta[-1] - printed_fixed).max() >= 3e-3
    assert rates == pytest.approx(0.5 - math.sqrt(10.5 ** 2 + 4), rel=1e-14)
    assert np.abs(rates - printed_rates).max() >= 0.9
    # at γ = j the printed drag vanishes: no bias at all, against the real one
    _, printed_fixed = printed_weight_decay(WeightDecayScenario(gamma=10.0))
    assert printed_fixed == pytest.approx([0.0, -0.5])
    assert WeightDecayScenario(gamma=10.0).fixed_point() == pytest.approx([0.0, -0.5 * 4 / 204], abs=1e-15)
    # at γ = 0 (the paper's Fig. 3d) the two agree
    _, printed_fixed = printed_weight_decay(WeightDecayScenario(gamma=0.0))
    assert printed_fixed == pytest.approx(WeightDecayScenario().fixed_point())


def test_quadratic_step_formulas_carry_the_descent_sign():
    """Eqs. 77–87 (OCR'd without minus signs and inverses): the exact step is
    θ(Δt) − θ0 = −(I − e^{RΔt})H⁻¹g (Eq. 81/82), and to first order −[√(γ²/4 + ηkH) − γ/2]H⁻¹g Δt
    (Eq. 84): a descent direction; γ ≫ √(ηkλ) gives −(ηk/γ)g Δt (Eq. 86), γ = 0 −√(ηk)H^{−1/2}g Δt."""
    H, mu = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.3, -0.2])
    theta0 = np.array([1.0, 1.0])
    g = H @ (theta0 - mu)
    curvature, Q = np.linalg.eigh(H)

    def spectral(values):
        """The symmetric matrix with H's eigenvectors and the eigenvalues ``values``."""
        return Q @ np.diag(values) @ Q.T
    for gamma in (0.0, 1.0, 1e4):
        scenario = QuadraticScenario(H=H.tolist(), mu=mu.tolist(), gamma=gamma)
        # √(γ²/4 + λ) − γ/2 per eigenvalue λ, written without cancellation for γ = 1e4
        rates = curvature / (gamma / 2 + np.sqrt(gamma ** 2 / 4 + curvature))
        speed = spectral(rates)
        for dt in (1e-7, 0.5):
            exact = scenario.analytic(dt, theta0) - theta0
            decay = spectral(np.exp(-rates * dt))
            closed = -(np.eye(2) - decay) @ np.linalg.solve(H, g)
            assert exact == pytest.approx(closed, rel=1e-9, abs=1e-15)
        first_order = (scenario.analytic(1e-7, theta0) - theta0) / 1e-7
        assert first_order == pytest.approx(-speed @ np.linalg.solve(H, g), rel=1e-4)
        assert first_order @ g < 0
    assert first_order == pytest.approx(-g / 1e4, rel=1e-3)
    ballistic = spectral(1 / np.sqrt(curvature))
    undamped = QuadraticScenario(H=H.tolist(), mu=mu.tolist(), gamma=0.0)
    assert (undamped.analytic(1e-7, theta0) - theta0) / 1e-7 == pytest.approx(-ballistic @ g, rel=1e-4)


# -- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize("cls, params, words", [
    (DoubleWellScenario, {"h": -1.0}, ["'h'", "> 0"]),
    (DoubleWellScenario, {"theta_star": 0.0}, ["'theta_star'", "> 0"]),
    (DoubleWellScenario, {"q": 0.0}, ["'q'", "non-zero"]),
    (DoubleWellScenario, {"gamma": -0.5}, ["'gamma'", "≥ 0"]),
    (DoubleWellScenario, {"h": "steep"}, ["'h'", "number"]),
    (NaturalGradientScenario, {"H": [[1.0, 2.0], [2.0, 1.0]]}, ["'H'", "positive definite"]),
    (NaturalGradientScenario, {"H": [[1.0, 2.0], [0.0, 1.0]]}, ["'H'", "symmetric"]),
    (NaturalGradientScenario, {"G": [1.0, -1.0]}, ["'G'", "positive definite"]),
    (NaturalGradientScenario, {"G": [1.0, 1.0, 1.0]}, ["'G'", "shape"]),
    (NaturalGradientScenario, {"mu": [0.0, 1.0, 2.0]}, ["'mu'", "length 2"]),
    (RotationScenario, {"h": -4.0}, ["'h'", "> 0"]),
    (RotationScenario, {"mu": [0.0, 1.0, 2.0]}, ["'mu'", "length 2"]),
    (RotationScenario, {"q": float("nan")}, ["'q'", "finite"]),
    (RotationScenario, {"k": 0.0}, ["'k'", "> 0"]),
    (WeightDecayScenario, {"j": -0.1}, ["'j'", "≥ 0"]),
    (WeightDecayScenario, {"H": [4.0, 0.0]}, ["'H'", "positive definite"]),
    (WeightDecayScenario, {"H": [[[1.0]]]}, ["'H'", "dimensions"]),
    (WeightDecayScenario, {"mu": [1.0]}, ["'mu'", "length 2"]),
    (WeightDecayScenario, {"weight": 1.0}, ["'weight'", "valid", "j"]),
])
def test_bad_input_names_the_parameter_and_its_range(cls, params, words):
    with pytest.raises(ocp.ProblemError) as error:
        cls(**params)
    for word in words:
        assert word in str(error.value)


def test_theta0_of_the_wrong_size_is_an_error():
    scenario = RotationScenario()
    with pytest.raises(ocp.ProblemError, match="theta0"):
        ocp.solve(scenario.problem, [1.0, 2.0, 3.0])


def test_random_draws_are_valid_and_reproducible():
    for cls in (DoubleWellScenario, NaturalGradientScenario, RotationScenario, WeightDecayScenario):
        first = cls().random_params(np.random.default_rng(5))
        assert first == cls().random_params(np.random.default_rng(5))
        assert "gamma" not in first
        for gamma in (0.0, 0.1, 1.0, 10.0):
            scenario = cls(gamma=gamma, **first)
            assert scenario.has_analytic() == (cls is not DoubleWellScenario or gamma == 0)
            assert scenario.random_theta0(np.random.default_rng(6)).shape == (scenario.dim,)


# -- torch views ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", [DoubleWellScenario, NaturalGradientScenario, RotationScenario,
                                 WeightDecayScenario])
@pytest.mark.parametrize("seed", [None, 4])
def test_torch_loss_and_drift_match_casadi(cls, seed):
    scenario, theta0 = case(cls, 0.5, seed)
    problem = scenario.problem
    x = casadi.SX.sym("x", scenario.dim)
    params = problem.layout.unpack(casadi.DM(problem.parameter_values()))
    loss = problem.loss_value(x, params)
    outputs = [loss, casadi.gradient(loss, x)]
    if problem.drift is not None:
        outputs.append(problem.drift_vector(x, params))
    evaluate = casadi.Function("reference", [x], outputs)
    rng = np.random.default_rng(0)
    for point in (theta0, theta0 + rng.normal(size=scenario.dim)):
        values = [np.asarray(v).ravel() for v in evaluate(point)]
        theta = torch.tensor(point, dtype=torch.float64, requires_grad=True)
        torch_loss = scenario.torch_loss(theta)
        torch_loss.backward()
        assert float(torch_loss.detach()) == pytest.approx(values[0][0], rel=1e-13, abs=1e-14)
        assert theta.grad.numpy() == pytest.approx(values[1], rel=1e-12, abs=1e-13)
        drift = scenario.torch_drift(theta.detach())
        if problem.drift is None:
            assert drift is None
        else:
            assert drift.numpy() == pytest.approx(values[2], rel=1e-13, abs=1e-14)
