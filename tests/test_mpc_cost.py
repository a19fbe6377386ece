"""The cost options of learning_rules.RecedingHorizon (issue 26): one batched HVP call equals
separate ones to round-off; the adaptive schedule (replan_tolerance) reuses a model that
predicts the loss and measures again when the curvature changes; its options are checked."""
import copy

import pytest
import torch

from learning_rules import RecedingHorizon
from learning_rules.curvature import closure_with_graph, rademacher
from learning_rules.local_model import batched_hvp

DIM = 3


def planted_run(options, steps=64, switch=None, seed=0):
    """Steps on L = ½θᵀHθ with H = diag(1, 2, 3), multiplied by 20 from step ``switch`` on (the
    model measured before goes wrong there)."""
    torch.manual_seed(seed)
    param = torch.nn.Parameter(torch.ones(DIM, dtype=torch.float64))
    base = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    optimizer = RecedingHorizon([param], **options)
    path, state = [], {"step": 0}

    def closure():
        optimizer.zero_grad()
        factor = 20.0 if switch is not None and state["step"] >= switch else 1.0
        loss = 0.5 * factor * param @ base @ param
        loss.backward()
        return loss
    for step in range(steps):
        state["step"] = step
        optimizer.step(closure)
        path.append(param.detach().clone())
    return torch.stack(path), optimizer


ADAPTIVE = dict(lr=0.05, replan_interval=8, curvature="none", damping=1e-8, trust_radius=100.0)


def test_one_batched_call_equals_separate_calls():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    params = list(model.parameters())
    inputs, targets = torch.randn(11, 5, dtype=torch.float64), torch.randint(0, 3, (11,))

    def closure():
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        return loss
    _, graph = closure_with_graph(closure, params)
    size = sum(p.numel() for p in params)
    directions = [rademacher(size, params[0]) for _ in range(5)]
    together = batched_hvp(graph, params, directions)
    apart = torch.cat([batched_hvp(graph, params, directions[:3]),
                       batched_hvp(graph, params, directions[3:])])
    single = torch.cat([batched_hvp(graph, params, [v]) for v in directions])
    torch.testing.assert_close(together, apart, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(together, single, rtol=1e-12, atol=1e-14)


def test_adaptive_schedule_reuses_a_model_that_predicts_the_loss():
    reference, fixed = planted_run(ADAPTIVE)
    path, adaptive = planted_run({**ADAPTIVE, "replan_tolerance": 0.2})
    assert fixed.replans == 8 and fixed.reused_models == 0
    assert adaptive.replans < fixed.replans and adaptive.reused_models > 0
    assert adaptive.hvps < fixed.hvps
    # on an exact quadratic the reused model is the measured one: the same iterates
    torch.testing.assert_close(path, reference, rtol=1e-10, atol=1e-12)


def test_adaptive_schedule_measures_again_when_the_curvature_changes():
    _, steady = planted_run({**ADAPTIVE, "replan_tolerance": 0.2}, steps=40)
    _, switched = planted_run({**ADAPTIVE, "replan_tolerance": 0.2}, steps=40, switch=18)
    head = switched.param_groups[0]["group_state"]
    assert switched.replans > steady.replans          # the interval across the switch mispredicted
    assert head["last_prediction_error"] > 0.2


def test_max_model_reuse_bounds_the_reuses_in_a_row():
    _, optimizer = planted_run({**ADAPTIVE, "replan_tolerance": 0.2, "max_model_reuse": 1})
    assert optimizer.reused_models == optimizer.replans == 4


def test_adaptive_state_dict_round_trip_continues_identically():
    _, optimizer = planted_run({**ADAPTIVE, "replan_tolerance": 0.2}, steps=20)
    clone = copy.deepcopy(optimizer)
    param = optimizer.param_groups[0]["params"][0]
    other = torch.nn.Parameter(param.detach().clone())
    restored = RecedingHorizon([other], **ADAPTIVE, replan_tolerance=0.2)
    restored.load_state_dict(optimizer.state_dict())
    base = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    for opt, p in ((optimizer, param), (restored, other), (clone, clone.param_groups[0]["params"][0])):
        def closure(opt=opt, p=p):
            opt.zero_grad()
            loss = 0.5 * p @ base @ p
            loss.backward()
            return loss
        for _ in range(20):
            opt.step(closure)
    torch.testing.assert_close(clone.param_groups[0]["params"][0], param, rtol=0, atol=0)
    torch.testing.assert_close(other, param, rtol=1e-13, atol=1e-15)     # the state dict: to round-off
    assert restored.reused_models == optimizer.reused_models


@pytest.mark.parametrize("options, message", [
    ({"replan_tolerance": 0.0}, "replan_tolerance"), ({"replan_tolerance": -1.0}, "replan_tolerance"),
    ({"replan_tolerance": float("nan")}, "replan_tolerance"), ({"max_model_reuse": 0}, "max_model_reuse"),
    ({"max_model_reuse": 1.5}, "max_model_reuse"),
])
def test_bad_schedule_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        RecedingHorizon([torch.nn.Parameter(torch.ones(2))], **options)
