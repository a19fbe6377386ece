"""weight_uncertainty (App. I): EL equations, rest variance, the variance jump at a switch,
and the WeightUncertainty optimizer against the overdamped flow and the collocation reference."""
import copy
import math
import warnings

import numpy as np
import pytest
import torch

import ocp
import problems
from learning_rules import WeightUncertainty
from lossnav.validation.weight_uncertainty_study import run_on_scenario
from problems.weight_uncertainty import WeightUncertaintyScenario as Scenario
from problems.weight_uncertainty import solve_switch
from problems.weight_uncertainty_ocp import hand_residual


def _order(errors):
    return [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]


@pytest.fixture(scope="module")
def stationary():
    scenario = Scenario(gamma=0.25, beta=1.5, k=1.2, H=[3.0, 0.4], g=[-1.0, 0.5], mu0=[0.2, -0.1])
    return scenario, ocp.solve(scenario.problem, scenario.theta0)


def test_registered():
    assert "weight_uncertainty" in problems.names()
    scenario = problems.get("weight_uncertainty")
    assert scenario.problem.state_names == ["mu[0]", "mu[1]", "v[0]", "v[1]"]


def test_el_residual_of_collocation(stationary):
    scenario, path = stationary
    assert path.stats["reached_rest"]
    assert ocp.euler_lagrange_error(scenario.problem, path) < 1e-6


def test_hand_derived_el_equations(stationary):
    scenario, path = stationary
    n, eta = scenario.weights, scenario.params["eta"]
    hand, size = hand_residual(scenario, path)
    assert np.abs(hand).max() / size.max() < 1e-6          # the solution satisfies them
    # identity with the engine's residual r = d/dt ∂ℓ/∂ẋ − γ∂ℓ/∂ẋ − ∂ℓ/∂x on any path:
    # R_μ = ηv·r_μ and R_v = 2ηv²·r_v (the momenta are μ̇/(ηv) and v̇/(2ηv²))
    other = ocp.from_path(scenario.problem, lambda t: path(t) * (1 + 0.1 * np.sin(np.outer(t, [1, 2, 1.5,
                                                                                               2.5]))),
                          20.0, tol=1e-10)
    for trajectory in (path, other):
        engine = ocp.euler_lagrange_residual(scenario.problem, trajectory)
        hand, size = hand_residual(scenario, trajectory)
        v = trajectory.theta[:, n:]
        scaled = np.hstack([eta * v * engine[:, :n], 2 * eta * v ** 2 * engine[:, n:]])
        assert np.abs(scaled - hand).max() <= 1e-9 * size.max()
    assert np.abs(hand).max() / size.max() > 1e-2        # off the optimum they do not vanish


def test_a_wrong_equation_fails(stationary):
    """Negative control: dropping the −v̇²/v term (as a flat-metric derivation would) leaves an O(1)
    residual."""
    scenario, path = stationary
    n = scenario.weights
    hand, size = hand_residual(scenario, path)
    dv = path.velocity[:, n:]
    wrong = hand[:, n:] + dv ** 2 / path.theta[:, n:]
    assert np.abs(wrong).max() / size.max() > 1e-2


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_rest_variance_is_beta_over_kH(beta):
    """Eq. 149, v* = 1/(kH), is the β = 1 case of v* = β/(kH) (exact at rest)."""
    scenario = Scenario(H=[5.0, 0.3], g=[1.0, -0.6], beta=beta, k=1.5, gamma=0.0)
    path = ocp.solve(scenario.problem, scenario.theta0)
    H = np.array([5.0, 0.3])
    np.testing.assert_allclose(path.theta[-1, 2:], beta / (1.5 * H), rtol=1e-8)
    np.testing.assert_allclose(path.theta[-1, :2], -np.array([1.0, -0.6]) / H, rtol=1e-8)
    np.testing.assert_allclose(scenario.fixed_point(), path.theta[-1], rtol=1e-8)
    if beta != 1.0:
        assert abs(path.theta[-1, 2] - 1 / (1.5 * H[0])) > 0.1     # the β = 1 formula would be wrong


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_variance_jump_after_switch_to_flatter_basin(gamma):
    """From rest in a sharp basin, a switch to an 8× flatter one with the same minimum: v
    stays put before t_s, then rises monotonically to the new β/(kH), μ does not move."""
    scenario = Scenario(H=[4.0, 2.0], g=[-2.0, 1.0], H_after=[0.5, 0.25], g_after=[-0.25, 0.125],
                        t_switch=3.0, gamma=gamma)
    theta0 = scenario.rest_point()
    solution = solve_switch(scenario, theta0=theta0, until=None if gamma == 0 else 25.0)
    assert solution.el_error() < 2e-3
    t = np.linspace(0, solution.path.t[-1] if gamma == 0 else 25.0, 400)
    x = solution(t)
    before, after = t < 3.0, t > 3.0
    assert np.abs(x[before] - theta0).max() < 1e-9
    assert np.abs(x[:, :2] - theta0[:2]).max() < 1e-7                           # the minimum did not move
    assert np.all(np.diff(x[after, 2:], axis=0) >= -1e-9)
    assert np.all(solution.after.velocity[0, 2:] > 0.05)                      # re-planned at once
    final = solution.after.theta[-1, 2:] if gamma == 0 else x[-1, 2:]
    np.testing.assert_allclose(final, scenario.rest_point(after=True)[2:], rtol=1e-3)


def test_g_switch_raises_variance_transiently():
    """Same H, new g: the μ̇² term of the v-equation lifts v above β/(kH) while μ moves (App. I.4)."""
    scenario = Scenario(H=[4.0], g=[-2.0], g_after=[2.0], t_switch=1.0, gamma=0.0)
    solution = solve_switch(scenario, theta0=scenario.rest_point())
    peak = solution.after.theta[:, 1].max()
    assert peak > 1.1 * scenario.rest_point()[1]
    np.testing.assert_allclose(solution.after.theta[-1], scenario.rest_point(after=True), rtol=1e-7)


def test_switch_objective_is_the_two_phase_cost():
    """J = ∫_0^{t_s} e^{−γt} ℓ_A dt + ∫_{t_s}^{T} e^{−γt} ℓ_B dt computed independently: Simpson's
    rule on the path's own polynomials (θ̇ by central differences), each phase with its own
    task; the same integral with the first task throughout differs by far more than the
    tolerance (the check this replaces asserted only objective > 0)."""
    import scipy.integrate
    scenario = Scenario(H=[2.0], g=[-1.0], H_after=[0.5], t_switch=1.0, gamma=0.5)
    solution = solve_switch(scenario, until=8.0)
    assert solution.path.t[0] == 0 and abs(solution.path.t[-1] - 8.0) < 1e-9
    np.testing.assert_allclose(solution(1.0), solution.after.theta[0], atol=1e-12)
    first, second = (scenario.task(after=flag).problem for flag in (False, True))
    h = 1e-6

    def phase(problem, start, end):
        t = np.linspace(start + 2 * h, end - 2 * h, 4001)
        velocity = (solution(t + h) - solution(t - h)) / (2 * h)
        kinetic, potential, _ = ocp.results.path.running_cost(problem, t, solution(t), velocity)
        return scipy.integrate.simpson(np.exp(-first.gamma * t) * (kinetic + potential), x=t)
    two_phase = phase(first, 0.0, 1.0) + phase(second, 1.0, 8.0)
    one_task = phase(first, 0.0, 1.0) + phase(first, 1.0, 8.0)
    assert solution.objective == pytest.approx(two_phase, rel=2e-5)
    assert abs(one_task - two_phase) > 100 * 2e-5 * abs(two_phase)


def test_optimizer_converges_to_the_overdamped_flow_with_order_one():
    scenario = Scenario(H=[4.0, 2.0], g=[-2.0, 1.0], H_after=[0.5, 0.25], t_switch=2.0, gamma=2.0, eta=2.0)
    errors = []
    for dt in (0.1, 0.05, 0.025):
        t, x = run_on_scenario(scenario, dt, int(round(4 / dt)))
        errors.append(np.abs(x - scenario.overdamped_path(t)).max())
    assert all(0.95 <= order <= 1.05 for order in _order(errors)), (errors, _order(errors))


def test_optimizer_against_collocation_across_a_switch():
    """Acceptance: overdamped scaling η = γ, Δt = 0.4/γ (the study of lossnav validate
    --report): the optimizer's error against the optimal path (two-phase collocation across
    the switch, windows mesh-converged) falls with order ≈ 1 as Δt → 0 (0.92, 0.96 here)."""
    from lossnav.validation.weight_uncertainty_study import joint_limit_study
    rows = joint_limit_study(gammas=(8.0, 16.0, 32.0))
    assert rows[-1]["vs_collocation"] < 0.1
    assert all(0.8 <= row["order_vs_collocation"] <= 1.2 for row in rows[1:]), rows
    assert all(row["el_error"] <= 1e-4 for row in rows), rows


def test_optimizer_rests_at_beta_over_kH_on_a_quadratic():
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    H = torch.tensor([3.0, 0.5], dtype=torch.float64)
    optimizer = WeightUncertainty([mu], lr=0.1, k=2.0, beta=1.5, gamma=1.0, curvature="exact",
                                  init_variance=0.1)

    def closure():
        optimizer.zero_grad()
        loss = 0.5 * (H * mu * mu).sum()
        loss.backward()
        return loss
    for _ in range(600):
        optimizer.step(closure)
    torch.testing.assert_close(optimizer.state[mu]["variance"], 1.5 / (2.0 * H), rtol=1e-9, atol=0)
    assert float(mu.detach().abs().max()) < 1e-8


def test_variance_floor_cap_and_non_finite_steps_are_counted():
    mu = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    curv = torch.tensor([1e6, -3.0], dtype=torch.float64)          # very sharp, and negative curvature
    optimizer = WeightUncertainty([mu], lr=1.0, curvature=lambda p, g: curv.clone(), init_variance=1.0,
                                  min_variance=1e-3, max_variance=50.0)
    bad = [False]

    def closure():
        optimizer.zero_grad()
        loss = (mu * mu).sum() * (float("nan") if bad[0] else 1.0)
        loss.backward()
        return loss
    for _ in range(10):
        optimizer.step(closure)
    v = optimizer.state[mu]["variance"]
    assert float(v[0]) == 1e-3 and float(v[1]) == 50.0
    clamps = optimizer.variance_clamps
    assert clamps["floored"] >= 1 and clamps["capped"] >= 1
    before = (mu.detach().clone(), v.clone())
    bad[0] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optimizer.step(closure)
    assert optimizer.skipped_steps == 1
    assert torch.equal(mu.detach(), before[0]) and torch.equal(v, before[1])
    assert torch.isfinite(v).all() and (v > 0).all()


def test_optimizer_on_a_network_state_dict_and_maximize():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    inputs, targets = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    optimizer = WeightUncertainty(model.parameters(), lr=0.5, gamma=1.0, eta=1.0, k=10.0, init_variance=0.05,
                                  max_variance=1.0)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss
    first = float(closure().detach())
    losses = [float(optimizer.step(closure).detach()) for _ in range(200)]
    assert losses[-1] < 0.9 * first
    assert all(torch.isfinite(optimizer.state[p]["variance"]).all() for p in model.parameters())
    clone = copy.deepcopy(optimizer)
    state = optimizer.state_dict()
    other = WeightUncertainty(copy.deepcopy(model).parameters(), lr=0.5)
    other.load_state_dict(state)
    assert other.param_groups[0]["k"] == 10.0 and clone.param_groups[0]["lr"] == 0.5
    for key in ("variance",):
        assert torch.equal(list(other.state.values())[0][key], list(optimizer.state.values())[0][key])
    # maximize: ascending −L is descending L
    a = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    minimizer = WeightUncertainty([a], lr=0.1, curvature="exact")
    maximizer = WeightUncertainty([b], lr=0.1, curvature="exact", maximize=True)
    for parameter, opt, sign in ((a, minimizer, 1.0), (b, maximizer, -1.0)):
        def closure_q(parameter=parameter, opt=opt, sign=sign):
            opt.zero_grad()
            loss = sign * (parameter * parameter).sum()
            loss.backward()
            return loss
        for _ in range(5):
            opt.step(closure_q)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("params, message", [
    ({"H": [1.0, 0.0]}, "'H' must be positive definite"), ({"H": [1.0, -1.0]},
                                                           "'H' must be positive definite"),
    ({"beta": 0.0}, "'beta' must be > 0"), ({"beta": -1.0}, "'beta' must be > 0"), ({"k": 0.0},
                                                                                    "'k' must be > 0"),
    ({"eta": 0.0}, "'eta' must be > 0"), ({"gamma": -1.0}, "'gamma' must be ≥ 0"), ({"g": [1.0]},
                                                                                    "'g' must have length 2"),
    ({"H_after": [1.0, 1.0]}, "need t_switch"), ({"t_switch": 0.0, "H_after": [1.0, 1.0]},
                                                 "'t_switch' must be > 0"),
    ({"t_switch": 1.0, "H_after": [1.0, 0.0]}, "'H_after' must be positive definite"),
    ({"t_switch": 1.0, "H_after": [1.0]}, "'H_after' must have the size of H"), ({"nope": 1},
                                                                                 "unknown parameter 'nope'"),
])
def test_bad_scenario_parameters(params, message):
    with pytest.raises(ocp.ProblemError, match=message):
        Scenario(**params)


def test_bad_states_and_switch_solves():
    scenario = Scenario()
    for theta0, message in (([0, 0, 0.0, 1], "variances v must be > 0"), ([0, 0, -1, 1],
                                                                          "variances v must be > 0"),
                            ([0, 0, 1], "length 4"), ([0, 0, np.nan, 1], "finite")):
        with pytest.raises(ocp.ProblemError, match=message):
            ocp.solve(scenario.problem, theta0)
    with pytest.raises(ocp.ProblemError, match="k must be > 0"):
        scenario.problem.replace(k=0.0)
    with pytest.raises(ocp.ProblemError, match="needs a scenario with t_switch"):
        solve_switch(scenario)                                   # no switch
    switched = Scenario(H_after=[1.0, 1.0], t_switch=1.0)
    with pytest.raises(ocp.ProblemError, match="solve_switch"):
        ocp.solve(switched.problem, switched.theta0)            # the engine assumes a stationary loss
    with pytest.raises(ocp.ProblemError, match="until must be a finite time after t_switch"):
        solve_switch(switched, until=0.5)
    with pytest.raises(ocp.ProblemError):
        Scenario(gamma=0.0).overdamped_path(1.0)


@pytest.mark.parametrize("options", [
    {"lr": 0.0}, {"lr": -1.0}, {"gamma": 0.0}, {"beta": 0.0}, {"k": 0.0}, {"eta": -1.0},
    {"init_variance": 0.0}, {"init_variance": -1.0}, {"min_variance": 0.0},
    {"min_variance": 1.0, "max_variance": 0.5}, {"init_variance": 2.0, "max_variance": 1.0},
    {"max_variance": float("nan")}, {"curvature": "fisher"},
])
def test_bad_optimizer_hyperparameters(options):
    parameter = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError):
        WeightUncertainty([parameter], **options)


def test_state_dict_round_trip_continues_identically_and_scheduler_scales_dt():
    def make():
        torch.manual_seed(3)
        model = torch.nn.Linear(3, 2).double()
        frozen = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))       # never gets a gradient
        inputs, targets = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
        return model, frozen, inputs, targets

    def closure_for(model, optimizer, inputs, targets):
        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            return loss
        return closure

    model, frozen, inputs, targets = make()
    optimizer = WeightUncertainty([*model.parameters(), frozen], lr=0.2, max_variance=1.0, init_variance=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    closure = closure_for(model, optimizer, inputs, targets)
    torch.manual_seed(7)
    for _ in range(5):
        optimizer.step(closure)
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert torch.equal(frozen.detach(), torch.ones(2, dtype=torch.float64)) and frozen not in optimizer.state
    saved, weights = copy.deepcopy(optimizer.state_dict()), copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    for _ in range(4):
        optimizer.step(closure)
    expected = [p.detach().clone() for p in model.parameters()]
    expected_v = [optimizer.state[p]["variance"].clone() for p in model.parameters()]

    model2, frozen2, _, _ = make()
    model2.load_state_dict(weights)
    optimizer2 = WeightUncertainty([*model2.parameters(), frozen2], lr=0.2)
    optimizer2.load_state_dict(saved)
    torch.set_rng_state(rng)
    closure2 = closure_for(model2, optimizer2, inputs, targets)
    for _ in range(4):
        optimizer2.step(closure2)
    for p, q, v in zip(model2.parameters(), expected, expected_v, strict=False):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)
        torch.testing.assert_close(optimizer2.state[p]["variance"], v, rtol=0, atol=0)


def test_float32_and_step_without_closure_needs_a_curvature_source():
    parameter = torch.tensor([1.0, -1.0], requires_grad=True)
    optimizer = WeightUncertainty([parameter], lr=0.1, curvature=lambda p, g: torch.full_like(p, 2.0))
    parameter.grad = torch.tensor([2.0, -2.0])
    optimizer.step()                                      # a callable curvature needs no closure
    assert optimizer.state[parameter]["variance"].dtype == torch.float32
    assert float(parameter.detach().abs().max()) < 1.0
    hutchinson = WeightUncertainty([parameter], lr=0.1)
    with pytest.raises(RuntimeError, match="closure"):
        hutchinson.step()


def test_anticipated_switch_resets_early_and_costs_less():
    """Knowing the switch is coming, the learner raises v before t_s, its velocity does not
    jump at t_s (costate continuity), and its cost is lower than the re-planning learner's."""
    from problems.weight_uncertainty import anticipated_switch
    scenario = Scenario(H=[4.0, 2.0], g=[-2.0, 1.0], H_after=[0.5, 0.25], g_after=[-0.25, 0.125],
                        t_switch=5.0, gamma=1.0)
    theta0 = scenario.rest_point()
    knowing = anticipated_switch(scenario, theta0=theta0, until=25.0)
    replanning = solve_switch(scenario, theta0=theta0, until=25.0)
    assert knowing.el_error() < 1e-2
    assert np.all(knowing.before.theta[-1, 2:] > 1.3 * theta0[2:])
    assert np.abs(replanning.before.theta[-1] - theta0).max() < 1e-9
    def jump(s):
        return np.abs(s.after.velocity[0, 2:] - s.before.velocity[-1, 2:]).max()
    assert jump(knowing) < 1e-3 * np.abs(knowing.after.velocity[0, 2:]).max()
    assert jump(replanning) > 0.1
    assert knowing.objective < replanning.objective
    with pytest.raises(ocp.ProblemError, match="needs t_switch ≤ 5/γ"):
        anticipated_switch(Scenario(H_after=[1.0, 1.0], t_switch=6.0, gamma=1.0))


COUPLED = [[3.0, 1.2], [1.2, 1.0]]


def test_coupled_curvature_el_and_rest_point():
    """A non-diagonal H (Eq. 147's Σ_j H_ij(μ_j − μ_j0)): rest at μ0 − H⁻¹g, v = β/(kH_ii)."""
    scenario = Scenario(H=COUPLED, g=[1.0, -0.5], mu0=[0.3, 0.1], beta=1.3, k=0.8, gamma=0.0)
    path = ocp.solve(scenario.problem, scenario.theta0)
    H = np.array(COUPLED)
    np.testing.assert_allclose(path.theta[-1, :2], [0.3, 0.1] - np.linalg.solve(H, [1.0, -0.5]), rtol=1e-8)
    np.testing.assert_allclose(path.theta[-1, 2:], 1.3 / (0.8 * np.diag(H)), rtol=1e-8)
    assert ocp.euler_lagrange_error(scenario.problem, path) < 1e-6
    hand, size = hand_residual(scenario, path)
    assert np.abs(hand).max() / size.max() < 1e-6
    torch_value = float(scenario.torch_loss(torch.tensor([0.5, -0.2, 0.7, 1.1], dtype=torch.float64)))
    a = np.array([0.2, -0.3])
    assert abs(torch_value - (np.dot([1.0, -0.5], a) + 0.5 * a @ H @ a + 0.5 * (3.0 * 0.7 + 1.1))) < 1e-12
    with pytest.raises(ocp.ProblemError):
        Scenario(H=[[1.0, 2.0], [2.0, 1.0]])                      # indefinite: no minimum


def test_optimizer_with_coupled_curvature_order_and_collocation():
    scenario = Scenario(H=COUPLED, g=[-1.0, 0.5], H_after=[[0.5, 0.2], [0.2, 0.3]], t_switch=2.0,
                        gamma=16.0, eta=16.0)
    errors = []
    for dt in (0.05, 0.025, 0.0125):
        t, x = run_on_scenario(scenario, dt, int(round(4 / dt)))
        errors.append(np.abs(x - scenario.overdamped_path(t)).max())
    assert all(0.95 <= order <= 1.05 for order in _order(errors)), (errors, _order(errors))
    reference = solve_switch(scenario, until=4.0)
    assert np.abs(scenario.overdamped_path(t) - reference(t)).max() < 0.1       # O(1/γ)
