"""The torch.optim contract of every rule, mirroring torch's own optimizer tests: param groups,
step(closure), state_dict round trips, deep copy, LR schedulers, maximize, bad input,
non-finite gradients."""
import copy
import pathlib
import warnings

import pytest
import torch
from conftest import closure_for

from learning_rules import (
    Ballistic,
    BeliefAdam,
    DriftCompensated,
    NaturalGradient,
    OptimalQuadratic,
    RecedingHorizon,
    WeightUncertainty,
)

FACTORIES = {
    "optimal_quadratic_hutchinson": lambda p, **kw: OptimalQuadratic(p, lr=0.1, gamma=1.0, **kw),
    "optimal_quadratic_exact": lambda p, **kw: OptimalQuadratic(p, lr=0.1, gamma=0.5, curvature="exact",
                                                                **kw),
    "optimal_quadratic_refresh3": lambda p, **kw: OptimalQuadratic(p, lr=0.1, refresh_interval=3, **kw),
    "drift_compensated": lambda p, **kw: DriftCompensated(p, lr=0.1, gamma=1.0, weight_decay=0.1, **kw),
    "ballistic": lambda p, **kw: Ballistic(p, lr=0.01, **kw),
    "ballistic_paper": lambda p, **kw: Ballistic.paper(p, lr=0.01, **kw),
    "ballistic_hutchinson": lambda p, **kw: Ballistic(p, lr=0.01, curvature="hutchinson", **kw),
    "natural_gradient_fisher": lambda p, **kw: NaturalGradient(p, lr=0.01, metric="fisher", damping=1e-3,
                                                               **kw),
    "natural_gradient_identity": lambda p, **kw: NaturalGradient(p, lr=0.1, **kw),
    "belief_adam": lambda p, **kw: BeliefAdam(p, lr=0.01, **kw),
    "weight_uncertainty": lambda p, **kw: WeightUncertainty(p, lr=0.05, max_variance=1.0, **kw),
    "receding_horizon": lambda p, **kw: RecedingHorizon(p, lr=0.1, replan_interval=3, **kw),
}


def make_model(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    inputs = torch.randn(16, 4, dtype=torch.float64)
    targets = torch.randn(16, 1, dtype=torch.float64)
    return model, inputs, targets


def run(factory, steps, seed=0, **kw):
    model, inputs, targets = make_model(seed)
    optimizer = factory(model.parameters(), **kw)
    closure = closure_for(model, inputs, targets, optimizer)
    torch.manual_seed(123)
    losses = [float(optimizer.step(closure).detach()) for _ in range(steps)]
    return model, optimizer, losses


def assert_same_groups(groups, others):
    """Equal hyperparameters and equal group state (tensors compared exactly)."""
    assert len(groups) == len(others)
    for group, other in zip(groups, others, strict=False):
        assert {k: v for k, v in group.items() if k != "group_state"} == \
            {k: v for k, v in other.items() if k != "group_state"}
        state, other_state = group["group_state"], other["group_state"]
        assert set(state) == set(other_state)
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other_state[key]), key
            else:
                assert value == other_state[key], key


@pytest.fixture(params=sorted(FACTORIES))
def factory(request):
    return FACTORIES[request.param]


def test_step_returns_loss_and_runs_closure_with_grad_once(factory):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    calls = []
    closure = closure_for(model, inputs, targets, optimizer, calls=calls)
    with torch.no_grad():
        loss = optimizer.step(closure)
    assert calls == [True]
    assert isinstance(loss, torch.Tensor) and torch.isfinite(loss)


def test_training_decreases_loss(factory):
    _, _, losses = run(factory, 30)
    assert losses[-1] < losses[0]


def test_gradients_left_without_graph(factory):
    model, optimizer, _ = run(factory, 2)
    for param in model.parameters():
        assert param.grad is not None and param.grad.grad_fn is None and not param.grad.requires_grad


def test_state_dict_round_trip(factory):
    model, optimizer, _ = run(factory, 4)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    twin, inputs, targets = make_model()
    twin.load_state_dict(saved_model)
    twin_optimizer = factory(twin.parameters())
    twin_optimizer.load_state_dict(saved_state)
    assert_same_groups(twin_optimizer.state_dict()["param_groups"], optimizer.state_dict()["param_groups"])
    for original, restored in ((model, optimizer), (twin, twin_optimizer)):
        torch.manual_seed(7)
        closure = closure_for(original, inputs, targets, restored)
        for _ in range(3):
            restored.step(closure)
    for a, b in zip(model.parameters(), twin.parameters(), strict=False):
        assert torch.equal(a, b)


def test_deepcopy_is_independent(factory):
    model, optimizer, _ = run(factory, 2)
    clone = copy.deepcopy(optimizer)
    before = copy.deepcopy(clone.state_dict())
    model_inputs = make_model()
    optimizer.step(closure_for(model, model_inputs[1], model_inputs[2], optimizer))
    after = clone.state_dict()
    for key, state in before["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after["state"][key][name]))


def test_param_groups_have_their_own_lr(factory):
    results = []
    for scale in (1.0, 0.5):
        model, inputs, targets = make_model()
        first, second = list(model[0].parameters()), list(model[2].parameters())
        probe = factory([torch.nn.Parameter(torch.zeros(1))])
        optimizer = factory([{"params": first}, {"params": second, "lr": probe.defaults["lr"] * scale}])
        assert optimizer.param_groups[0]["lr"] == probe.defaults["lr"]
        assert optimizer.param_groups[1]["lr"] == probe.defaults["lr"] * scale
        torch.manual_seed(1)
        optimizer.step(closure_for(model, inputs, targets, optimizer))
        results.append(([p.detach().clone() for p in first], [p.detach().clone() for p in second]))
    for a, b in zip(results[0][0], results[1][0], strict=False):
        assert torch.equal(a, b)                    # group 0 does not see group 1's lr
    assert any(not torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=False))


def test_parameters_without_gradient_are_untouched(factory):
    model, inputs, targets = make_model()
    extra = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = factory([{"params": list(model.parameters())}, {"params": [extra]}])
    optimizer.step(closure_for(model, inputs, targets, optimizer))
    assert torch.equal(extra, torch.ones(3, dtype=torch.float64))


def test_lr_scheduler_drives_lr(factory):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    base = optimizer.param_groups[0]["lr"]
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    closure = closure_for(model, inputs, targets, optimizer)
    for _ in range(3):
        optimizer.step(closure)
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(base / 8)


@pytest.mark.parametrize("make_scheduler", [
    lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=o.param_groups[0]["lr"], total_steps=10,
                                                  cycle_momentum=False),
], ids=["step", "one_cycle"])
def test_state_under_a_scheduler_loads_into_a_fresh_optimizer(factory, make_scheduler):
    """Schedulers add keys (initial_lr, max_lr, ...) to the param groups: the state is still this
    rule's, so load_state_dict accepts it and keeps the scheduled lr (the group-key check of
    the hardening refused 'initial_lr' at first)."""
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    scheduler = make_scheduler(optimizer)
    closure = closure_for(model, inputs, targets, optimizer)
    for _ in range(2):
        optimizer.step(closure)
        scheduler.step()
    fresh = factory(make_model()[0].parameters())
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert fresh.param_groups[0]["initial_lr"] == optimizer.param_groups[0]["initial_lr"]


def test_lr_scales_the_step_exactly():
    """lr is ηkΔt/γ for NaturalGradient: halving it halves the displacement."""
    displacements = []
    for lr in (0.2, 0.1):
        model, inputs, targets = make_model()
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = NaturalGradient(model.parameters(), lr=lr, metric=2.0)
        optimizer.step(closure_for(model, inputs, targets, optimizer))
        displacements.append(torch.cat([(p - s).reshape(-1) for p, s in zip(model.parameters(), start,
                                                                            strict=False)]))
    torch.testing.assert_close(displacements[0], 2 * displacements[1], rtol=1e-10, atol=1e-15)


def test_maximize_of_negative_loss_equals_minimize(factory):
    paths = []
    for sign, maximize in ((1.0, False), (-1.0, True)):
        model, inputs, targets = make_model()
        optimizer = factory(model.parameters(), maximize=maximize)
        closure = closure_for(model, inputs, targets, optimizer, sign=sign)
        torch.manual_seed(5)
        for _ in range(3):
            optimizer.step(closure)
        paths.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(paths[0], paths[1], rtol=1e-12, atol=1e-14)


def test_closure_returning_loss_without_backward():
    model, inputs, targets = make_model()
    optimizer = OptimalQuadratic(model.parameters(), lr=0.1, curvature="exact")
    twin = copy.deepcopy(model)
    twin_optimizer = OptimalQuadratic(twin.parameters(), lr=0.1, curvature="exact")
    optimizer.step(lambda: torch.nn.functional.mse_loss(model(inputs), targets))
    twin_optimizer.step(closure_for(twin, inputs, targets, twin_optimizer))
    for a, b in zip(model.parameters(), twin.parameters(), strict=False):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)


def test_curvature_needs_closure():
    model, inputs, targets = make_model()
    optimizer = OptimalQuadratic(model.parameters(), curvature="exact")
    torch.nn.functional.mse_loss(model(inputs), targets).backward()
    with pytest.raises(RuntimeError, match="closure"):
        optimizer.step()


def test_first_order_rules_step_without_closure():
    model, inputs, targets = make_model()
    optimizer = Ballistic(model.parameters(), lr=0.01)
    torch.nn.functional.mse_loss(model(inputs), targets).backward()
    assert optimizer.step() is None


@pytest.mark.parametrize("make, message", [
    (lambda p: OptimalQuadratic(p, lr=-1.0), "lr"),
    (lambda p: OptimalQuadratic(p, lr=0.0), "lr"),
    (lambda p: OptimalQuadratic(p, eta=0.0), "eta"),
    (lambda p: OptimalQuadratic(p, k=-1.0), "k"),
    (lambda p: OptimalQuadratic(p, gamma=-0.1), "gamma"),
    (lambda p: OptimalQuadratic(p, gamma=float("nan")), "gamma"),
    (lambda p: OptimalQuadratic(p, gamma=0.0), "damping"),
    (lambda p: OptimalQuadratic(p, curvature="diagonal"), "curvature"),
    (lambda p: OptimalQuadratic(p, refresh_interval=0), "refresh_interval"),
    (lambda p: OptimalQuadratic(p, refresh_interval=1.5), "refresh_interval"),
    (lambda p: OptimalQuadratic(p, curvature_beta=1.0), "curvature_beta"),
    (lambda p: OptimalQuadratic(p, negative_curvature="flip"), "negative_curvature"),
    (lambda p: OptimalQuadratic(p, damping=-1.0), "damping"),
    (lambda p: OptimalQuadratic(p, metric=torch.tensor([1.0, -1.0])), "metric"),
    (lambda p: OptimalQuadratic(p, metric=torch.ones(3)), "metric"),
    (lambda p: DriftCompensated(p, weight_decay=-1.0), "weight_decay"),
    (lambda p: DriftCompensated(p, drift_matrix=torch.zeros(3, 3)), "drift_matrix"),
    (lambda p: Ballistic(p, lr=-1e-3), "lr"),
    (lambda p: Ballistic(p, beta=1.0), "beta"),
    (lambda p: Ballistic(p, eps=-1.0), "eps"),
    (lambda p: Ballistic(p, eps_placement="middle"), "eps_placement"),
    (lambda p: NaturalGradient(p, lr=-0.1), "lr"),
    (lambda p: NaturalGradient(p, metric="kfac"), "metric"),
    (lambda p: NaturalGradient(p, metric=torch.tensor([[1.0, 2.0], [2.0, 1.0]])), "metric"),
    (lambda p: NaturalGradient(p, damping=-1.0), "damping"),
])
def test_invalid_hyperparameters_name_parameter_and_range(make, message):
    param = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=message) as error:
        make([param])
    assert any(mark in str(error.value) for mark in ("[", "(", "one of", "shape", "size", "finite"))


def test_invalid_lr_set_by_hand_is_caught_on_add_param_group():
    optimizer = Ballistic([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    with pytest.raises(ValueError, match="beta"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "beta": 2.0})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_gradient_skips_step_counts_and_warns_once(factory, bad):
    model, inputs, targets = make_model()
    optimizer = factory(model.parameters())
    start = [p.detach().clone() for p in model.parameters()]

    def poisoned():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets) * torch.tensor(bad, dtype=torch.float64)
        loss.backward()
        return loss

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer.step(poisoned)
        optimizer.step(poisoned)
        assert caught == []                                   # nothing read at the step
        assert optimizer.skipped_steps == 2 and optimizer.skipped_steps == 2
    assert sum(issubclass(w.category, RuntimeWarning) and "skipped" in str(w.message) for w in caught) == 1
    for param, value in zip(model.parameters(), start, strict=False):
        assert torch.equal(param, value)
    group_state = optimizer.state_dict()["param_groups"][0]["group_state"]
    assert int(group_state["skipped_steps"]) == 2
    assert int(group_state["step"]) == 0                      # the step counter did not move
    for _ in range(2):   # recovers (averages untouched) by the next scheduled refresh (calls 0, 3, ...)
        optimizer.step(closure_for(model, inputs, targets, optimizer))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, s) for p, s in zip(model.parameters(), start, strict=False))


def test_non_finite_curvature_skips_step():
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    optimizer = OptimalQuadratic([param], lr=0.1, curvature=lambda p, g: torch.full_like(p, float("nan")))
    def closure():
        optimizer.zero_grad()
        loss = (param ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert torch.equal(param, torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match="curvature"):
        assert optimizer.skipped_steps == 1


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_foreach_true_and_false_agree_to_round_off(name):
    """foreach=True (torch._foreach_* kernels) and False (tensor by tensor) take the same steps;
    foreach=None (torch's default) is one of them."""
    runs = {flag: run(FACTORIES[name], 5, foreach=flag) for flag in (True, False, None)}
    for flag in (False, None):
        for a, b in zip(runs[True][0].parameters(), runs[flag][0].parameters(), strict=False):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert runs[True][1].param_groups[0]["foreach"] is True


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_fused_true_is_refused_with_the_reason(name):
    model, _, _ = make_model()
    with pytest.raises(RuntimeError, match="no fused kernel"):
        FACTORIES[name](model.parameters(), fused=True)
    for bad in ("yes", 1):
        with pytest.raises(ValueError, match="foreach must be None, True or False"):
            FACTORIES[name](model.parameters(), foreach=bad)
    assert FACTORIES[name](model.parameters(), fused=False).param_groups[0]["fused"] is False


def test_group_state_lives_in_the_group_not_in_a_parameter():
    model, optimizer, _ = run(FACTORIES["receding_horizon"], 4)
    assert {"plan", "basis", "step", "skipped_steps"} <= set(optimizer.param_groups[0]["group_state"])
    assert all({"plan", "step", "skipped_steps"}.isdisjoint(state) for state in optimizer.state.values())
    assert int(optimizer.param_groups[0]["group_state"]["step"]) == 4


LEGACY = {"ballistic": lambda p: Ballistic(p, lr=1e-3),
          "natural_gradient": lambda p: NaturalGradient(p, lr=1e-3, metric="fisher"),
          "optimal_quadratic": lambda p: OptimalQuadratic(p, lr=0.1, damping=1.0, refresh_interval=2),
          "belief_adam": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3),
          "weight_uncertainty": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2),
          "mpc": lambda p: RecedingHorizon(p, lr=5e-3, metric="gradient_squares", replan_interval=4,
                                           trust_radius=0.05)}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_a_state_dict_of_the_per_parameter_layout_loads(name):
    """tests/data/legacy_state_dicts.pt was made by main's code before the group layout
    (tests/data/make_legacy_state_dicts.py): 5 steps, step 2 poisoned. It loads, keeps its
    counts, and the restored optimizer steps on with finite values."""
    saved = torch.load(pathlib.Path(__file__).parent / "data" / "legacy_state_dicts.pt",
                       weights_only=False)[name]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    model.load_state_dict(saved["model"])
    optimizer = LEGACY[name](model.parameters())
    optimizer.load_state_dict(saved["optimizer"])
    group_state = optimizer.param_groups[0]["group_state"]
    completed = 5 if name == "mpc" else 4        # the old MPC path advanced its counter on the skip too
    assert int(group_state["step"]) == completed
    assert int(group_state["skipped_steps"]) == saved["skipped"] == 1
    assert all("skipped_steps" not in state and "step" not in state for state in optimizer.state.values())
    inputs, targets = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        return loss
    for _ in range(4):
        optimizer.step(closure)
    assert int(group_state["step"]) == completed + 4
    with pytest.warns(RuntimeWarning, match="1 step"):
        assert optimizer.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=False))


def test_a_malformed_group_state_is_refused():
    model, optimizer, _ = run(FACTORIES["ballistic"], 2)
    state = copy.deepcopy(optimizer.state_dict())
    state["param_groups"][0]["group_state"]["step"] = -1
    with pytest.raises(ValueError, match="group state.*'step' must be a count"):
        optimizer.load_state_dict(state)
    state["param_groups"][0]["group_state"] = 3
    with pytest.raises(ValueError, match="group_state must be a dict"):
        optimizer.load_state_dict(state)
