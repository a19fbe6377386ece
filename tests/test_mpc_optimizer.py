"""learning_rules.RecedingHorizon: exact on a quadratic (the OptimalQuadratic step when the trust
region is inactive), the trust region bounds the step, fallbacks, the torch.optim contract,
bad input; ocp.control.trust_region.TrustRegionPlanner against the closed form."""
import copy
import math
import warnings

import casadi
import numpy as np
import pytest
import torch
from conftest import closure_for

import ocp
from learning_rules import OptimalQuadratic, RecedingHorizon
from ocp.control.trust_region import TrustRegionPlanner

DIM = 3


def quadratic(seed=0):
    generator = torch.Generator().manual_seed(seed)
    root = torch.randn(DIM, DIM, dtype=torch.float64, generator=generator)
    hessian = root @ root.T + torch.eye(DIM, dtype=torch.float64)
    return hessian, torch.randn(DIM, dtype=torch.float64, generator=generator)


def run_quadratic(factory, steps, seed=0, start=1.0, sign=1.0):
    hessian, linear = quadratic(seed)
    param = torch.nn.Parameter(torch.full((DIM,), start, dtype=torch.float64))
    optimizer = factory([param])

    def closure():
        optimizer.zero_grad()
        loss = sign * (0.5 * param @ hessian @ param + linear @ param)
        loss.backward()
        return loss
    path = []
    for _ in range(steps):
        optimizer.step(closure)
        path.append(param.detach().clone())
    return torch.stack(path), optimizer


def exact_mpc(**kw):
    options = dict(lr=0.1, gamma=1.0, damping=0.0, trust_radius=100.0, plan_degree=6, skip_inactive=False)
    options.update(kw)
    options.setdefault("plan_intervals", options.get("replan_interval", 10))
    return lambda params: RecedingHorizon(params, **options)


@pytest.mark.parametrize("replan_interval, gamma", [(1, 1.0), (3, 1.0), (2, 0.0)])
def test_inactive_trust_region_equals_optimal_quadratic(replan_interval, gamma):
    damping = 0.0 if gamma else 1e-6
    reference, _ = run_quadratic(lambda p: OptimalQuadratic(p, lr=0.1, gamma=gamma, damping=damping,
                                                            curvature="exact"), 6)
    path, optimizer = run_quadratic(exact_mpc(replan_interval=replan_interval, gamma=gamma, damping=damping),
                                    6)
    torch.testing.assert_close(path, reference, rtol=1e-11, atol=1e-13)
    assert optimizer.fallbacks == 0
    assert optimizer.solves == optimizer.replans == -(-6 // replan_interval)   # IPOPT planned every time


def test_metric_step_equals_optimal_quadratic_in_that_metric():
    """metric="gradient_squares" with β = 0: G = |g| + ε at the first step; the whitened plan
    must be App. F's exact step OptimalQuadratic(metric=G)."""
    hessian, linear = quadratic()
    start = torch.ones(DIM, dtype=torch.float64)
    metric = (hessian @ start + linear).abs() + 1e-8
    reference, _ = run_quadratic(lambda p: OptimalQuadratic(p, lr=0.1, gamma=1.0, curvature="exact",
                                                            metric=metric), 1)
    path, optimizer = run_quadratic(exact_mpc(replan_interval=1, metric="gradient_squares", metric_beta=0.0,
                                              metric_eps=1e-8), 1)
    torch.testing.assert_close(path, reference, rtol=1e-11, atol=1e-13)
    assert optimizer.solves == 1


def test_closed_form_shortcut_when_inactive():
    reference, _ = run_quadratic(lambda p: OptimalQuadratic(p, lr=0.1, gamma=1.0, curvature="exact"), 4)
    path, optimizer = run_quadratic(exact_mpc(replan_interval=2, skip_inactive=True), 4)
    torch.testing.assert_close(path, reference, rtol=1e-12, atol=1e-14)
    assert optimizer.solves == 0 and optimizer.replans == 2


def test_active_trust_region_bounds_the_step():
    radius = 0.05
    free, _ = run_quadratic(exact_mpc(replan_interval=1), 1, start=20.0)
    path, optimizer = run_quadratic(exact_mpc(replan_interval=1, trust_radius=radius, plan_steps=5,
                                              plan_intervals=5), 3, start=20.0)
    start = torch.full((DIM,), 20.0, dtype=torch.float64)
    steps = torch.diff(torch.cat([start[None], path]), dim=0).norm(dim=1)
    assert float((free[0] - start).norm()) > 5 * radius         # unconstrained: far outside
    assert torch.all(steps <= radius * (1 + 1e-6))
    assert float(steps[0]) > 0.1 * radius
    assert optimizer.solves == 3 and optimizer.fallbacks == 0


def test_solver_failure_falls_back_and_is_counted():
    radius = 0.05
    path, optimizer = run_quadratic(exact_mpc(replan_interval=1, trust_radius=radius, max_iter=1), 3,
                                    start=20.0)
    assert optimizer.fallbacks == 3 and len(optimizer.failures) == 3
    steps = torch.diff(torch.cat([torch.full((1, DIM), 20.0, dtype=torch.float64), path]), dim=0).norm(dim=1)
    assert torch.all(steps <= radius * (1 + 1e-12)) and torch.all(steps > 0)
    assert optimizer.state_dict()["param_groups"][0]["group_state"]["fallbacks"] == 3


def free_end_lq_path(T, b, gamma, horizon, theta0, t):
    """min ∫_0^H e^{−γt}(½|θ̇|² + bᵀθ + ½θᵀTθ) dt, θ(0) = θ0, free end (η = k = 1): the
    Euler–Lagrange equation θ̈ − γθ̇ = Tθ + b with the natural condition θ̇(H) = 0. In the
    eigenbasis of T (eigenvalue λ) x = θ − θ*, θ* = −T⁻¹b, is A e^{r₊t} + B e^{r₋t} with
    r± = γ/2 ± √(γ²/4 + λ), A + B = x(0) and A r₊ e^{r₊H} + B r₋ e^{r₋H} = 0."""
    star = -np.linalg.solve(T, b)
    eigenvalues, basis = np.linalg.eigh(T)
    start = basis.T @ (np.asarray(theta0, float) - star)
    modes = []
    for curvature, x0 in zip(eigenvalues, start, strict=False):
        root = math.sqrt(gamma ** 2 / 4 + curvature)
        fast, slow = gamma / 2 + root, gamma / 2 - root
        A, B = np.linalg.solve([[1.0, 1.0], [fast * math.exp(fast * horizon),
                                             slow * math.exp(slow * horizon)]],
                               [x0, 0.0])
        modes.append(A * np.exp(fast * np.asarray(t)) + B * np.exp(slow * np.asarray(t)))
    return (basis @ np.array(modes)).T + star


def test_planner_matches_closed_form_and_respects_radius():
    m = 2

    def loss(a, b, T):
        return casadi.dot(b, a) + 0.5 * casadi.dot(a, casadi.mtimes(T, a))

    T, b = np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([1.0, -2.0])
    problem = ocp.DiscountedOCP(m, loss, gamma=0.5, constants={"b": b, "T": T})
    planner = TrustRegionPlanner(problem, intervals=8, degree=5)
    values = problem.parameter_values()
    free = planner.solve(np.zeros(m), 0.25, 100.0, values)
    tight = planner.solve(np.zeros(m), 0.25, 0.2, values)
    assert free["success"] and tight["success"]
    assert free["max_offset"] < 1 and tight["max_offset"] == pytest.approx(1.0, abs=1e-6)
    # inactive: the free-end finite-horizon optimum in closed form (not the engine's collocation)
    times = np.arange(1, 9)
    np.testing.assert_allclose(planner.evaluate(free["nodes"], times),
                               free_end_lq_path(T, b, 0.5, 2.0, np.zeros(m), 0.25 * times), atol=1e-9)
    assert np.linalg.norm(tight["nodes"], axis=1).max() <= 0.2 * (1 + 1e-6)
    with pytest.raises(ocp.ProblemError, match="intervals"):
        TrustRegionPlanner(problem, intervals=0)
    with pytest.raises(ocp.ProblemError, match="radius"):
        planner.solve(np.zeros(m), 0.25, -1.0, values)


# -- the torch.optim contract ------------------------------------------------------------
def make_model(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    return model, torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)


FACTORIES = {
    "euclidean": lambda p, **kw: RecedingHorizon(p, lr=0.2, replan_interval=3, **kw),
    "metric": lambda p, **kw: RecedingHorizon(p, lr=0.05, metric="gradient_squares", replan_interval=2,
                                              trust_radius=0.05, **kw),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request):
    return FACTORIES[request.param]


def test_training_decreases_loss_and_closure_runs_once(factory):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    calls = []
    closure = closure_for(model, inputs, targets, optimizer, calls=calls)
    torch.manual_seed(0)
    with torch.no_grad():
        losses = [float(optimizer.step(closure)) for _ in range(20)]
    assert calls == [True] * 20
    assert losses[-1] < 0.8 * losses[0]
    assert optimizer.replans >= 7 and optimizer.hvps > 0
    for param in model.parameters():
        assert param.grad is not None and param.grad.grad_fn is None


def test_state_dict_round_trip_continues_identically(factory):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    torch.manual_seed(1)
    for _ in range(4):       # stops between re-plans: the plan must be in the state
        optimizer.step(closure_for(model, inputs, targets, optimizer))
    twin, _, _ = make_model()
    twin.load_state_dict(copy.deepcopy(model.state_dict()))
    twin_optimizer = factory(twin.parameters())
    twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for net, opt in ((model, optimizer), (twin, twin_optimizer)):
        torch.manual_seed(7)
        for _ in range(5):
            opt.step(closure_for(net, inputs, targets, opt))
    for a, b in zip(model.parameters(), twin.parameters(), strict=False):
        assert torch.equal(a, b)
    assert twin_optimizer.replans == optimizer.replans


def test_deepcopy_is_independent(factory):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    optimizer.step(closure_for(model, inputs, targets, optimizer))
    clone = copy.deepcopy(optimizer)
    before = clone.replans
    optimizer.step(closure_for(model, inputs, targets, optimizer))
    optimizer.step(closure_for(model, inputs, targets, optimizer))
    assert clone.replans == before


def test_lr_scheduler_drives_lr_and_forces_replan(factory):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    base = optimizer.param_groups[0]["lr"]
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        optimizer.step(closure_for(model, inputs, targets, optimizer))
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(base / 8)
    assert optimizer.replans == 3             # a new Δt is a new plan


def test_maximize_of_negative_loss_equals_minimize(factory):
    paths = []
    for sign, maximize in ((1.0, False), (-1.0, True)):
        model, inputs, targets = make_model()
        optimizer = factory(model.parameters(), maximize=maximize)
        torch.manual_seed(5)
        for _ in range(5):
            optimizer.step(closure_for(model, inputs, targets, optimizer, sign=sign))
        paths.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(paths[0], paths[1], rtol=1e-10, atol=1e-12)


def test_replan_needs_closure():
    model, inputs, targets = make_model()
    optimizer = RecedingHorizon(model.parameters())
    torch.nn.functional.mse_loss(model(inputs), targets).backward()
    with pytest.raises(RuntimeError, match="closure"):
        optimizer.step()


def test_non_finite_gradient_skips_and_recovers():
    model, inputs, targets = make_model()
    optimizer = RecedingHorizon(model.parameters(), lr=0.2, replan_interval=2)
    start = [p.detach().clone() for p in model.parameters()]

    def poisoned():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets) * torch.tensor(float("nan"),
                                                                                   dtype=torch.float64)
        loss.backward()
        return loss

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        optimizer.step(poisoned)
    assert optimizer.skipped_steps == 1
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), start, strict=False))
    optimizer.step(closure_for(model, inputs, targets, optimizer))
    assert any(not torch.equal(p, s) for p, s in zip(model.parameters(), start, strict=False))


@pytest.mark.parametrize("options, message", [
    (dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr"), (dict(eta=0.0), "eta"), (dict(k=-1.0), "k"),
    (dict(gamma=-1.0), "gamma"), (dict(gamma=0.0, damping=0.0), "damping"), (dict(subspace_dim=0),
                                                                             "subspace_dim"),
    (dict(subspace_dim=2.5), "subspace_dim"), (dict(replan_interval=0), "replan_interval"),
    (dict(replan_interval=5, plan_steps=3), "plan_steps"), (dict(plan_intervals=0), "plan_intervals"),
    (dict(plan_degree=0), "plan_degree"), (dict(trust_radius=0.0), "trust_radius"),
    (dict(trust_radius=float("inf")), "trust_radius"), (dict(curvature="exact"), "curvature"),
    (dict(metric="fisher"), "metric"), (dict(metric_beta=1.0), "metric_beta"), (dict(metric_eps=0.0),
                                                                                "metric_eps"),
    (dict(curvature_beta=1.0), "curvature_beta"), (dict(max_iter=0), "max_iter"), (dict(max_time=-1.0),
                                                                                   "max_time"),
    (dict(negative_curvature="flip"), "negative_curvature"),
])
def test_bad_hyperparameters_raise(options, message):
    param = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=message):
        RecedingHorizon([param], **options)


@pytest.mark.parametrize("metric", [None, "gradient_squares"])
def test_step_between_replans_is_the_documented_formula(metric):
    """Between re-plans the update is Q(a_{j+1} − a_j) (whitened by the re-plan's metric) plus the
    complement step −s ⊙ (I − QᵀQ)(ψ ⊙ (I − QᵀQ)(s ⊙ g)) with the current metric s = G^{-1/2}
    (module docstring): recomputed here from the optimizer's state and a fresh gradient, on a
    network larger than the subspace so that the complement is not empty."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    inputs, targets = torch.randn(20, 5, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    optimizer = RecedingHorizon(model.parameters(), lr=0.05, metric=metric, metric_beta=0.9, subspace_dim=2,
                                replan_interval=4, trust_radius=0.05, curvature="hutchinson")
    params = list(model.parameters())
    closure = closure_for(model, inputs, targets, optimizer)
    checked = 0
    for step in range(9):
        head = optimizer.param_groups[0]["group_state"]
        plain = step % 4 != 0
        if plain:
            before = torch.cat([p.detach().reshape(-1) for p in params])
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
            basis, plan, j = head["basis"], head["plan"], head["plan_index"]
            planned = basis.mT @ (plan[j + 1] - plan[j])
            if metric is None:
                scale = torch.ones_like(gradient)
            else:
                moment = 0.9 * head["second_moment"] + 0.1 * gradient ** 2
                corrected = moment / (1 - 0.9 ** (int(head["moment_updates"]) + 1))
                scale = 1 / torch.sqrt(torch.sqrt(corrected) + 1e-8)
                planned = planned * head["scale"]
            white = scale * gradient
            residual = white - basis.mT @ (basis @ white)
            complement = head["complement_factor"] * residual
            complement = complement - basis.mT @ (basis @ complement)
            expected = planned + scale * complement
            assert float(complement.norm()) > 1e-3 * float(planned.norm())     # both parts matter
        optimizer.step(closure)
        if plain:
            after = torch.cat([p.detach().reshape(-1) for p in params])
            torch.testing.assert_close(after - before, expected, rtol=1e-12, atol=1e-15)
            checked += 1
    assert checked == 6 and optimizer.replans == 3


def test_hutchinson_diagonal_is_measured_at_replans_in_the_subspace_call():
    """The complement's diagonal comes from Rademacher probes batched with the subspace's HVPs:
    for a diagonal Hessian z ⊙ Hz = diag(H) exactly, so the running average (β = 0.9, bias
    corrected) is diag(H) after every re-plan, and the complement factor is −ηkψ(diag H)."""
    curvatures = torch.linspace(0.5, 3.0, 12, dtype=torch.float64)
    param = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 12, dtype=torch.float64))
    optimizer = RecedingHorizon([param], lr=0.1, subspace_dim=2, replan_interval=2, curvature_beta=0.9,
                                hutchinson_samples=3, trust_radius=100.0)

    def closure():
        optimizer.zero_grad()
        loss = 0.5 * (curvatures * param ** 2).sum()
        loss.backward()
        return loss
    for step in range(4):
        optimizer.step(closure)
        state = optimizer.state[param]
        assert state["hessian_updates"] == step // 2 + 1
        torch.testing.assert_close(state["hessian_diag"] / (1 - 0.9 ** state["hessian_updates"]), curvatures,
                                   rtol=1e-13, atol=0)
    from learning_rules import kernels
    factor = -kernels.step_factor(curvatures, 0.1, 1.0, 1.0)
    torch.testing.assert_close(optimizer.param_groups[0]["group_state"]["complement_factor"], factor,
                               rtol=1e-12,
                               atol=0)
    assert optimizer.hvps == 4                       # the probes are not counted as subspace HVPs


def test_weight_decay_is_decoupled_and_skipped_with_the_step():
    """weight_decay j: θ ← (1 − Δt·j)θ + (the step without decay), as AdamW; not on a skipped step;
    a state saved without the key loads with j = 0."""
    paths = {}
    for decay in (0.0, 0.5):
        model, inputs, targets = make_model()
        optimizer = RecedingHorizon(model.parameters(), lr=0.1, replan_interval=3, weight_decay=decay)
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.step(closure_for(model, inputs, targets, optimizer))
        paths[decay] = ([p.detach().clone() for p in model.parameters()], before)
    (plain, start), (decayed, _) = paths[0.0], paths[0.5]
    for p0, p1, s in zip(plain, decayed, start, strict=False):
        torch.testing.assert_close(p1, p0 - 0.1 * 0.5 * s, rtol=1e-12, atol=1e-14)
    model, inputs, targets = make_model()
    optimizer = RecedingHorizon(model.parameters(), lr=0.1, replan_interval=3, weight_decay=0.5)
    optimizer.step(closure_for(model, inputs, targets, optimizer))
    before = [p.detach().clone() for p in model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.step(closure_for(model, inputs, targets, optimizer, sign=float("nan")))
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=False))
    saved = optimizer.state_dict()
    for group in saved["param_groups"]:
        del group["weight_decay"]
    twin = RecedingHorizon(make_model()[0].parameters(), lr=0.1, replan_interval=3, weight_decay=0.5)
    twin.load_state_dict(saved)
    assert twin.param_groups[0]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="weight_decay"):
        RecedingHorizon(model.parameters(), weight_decay=-1.0)
