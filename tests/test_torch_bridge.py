"""A loss written once, in plain CasADi or with problems.ops, works for the engine and the torch rules.

The CasADi bridge (problems.torch_bridge) against central finite differences and against the
native problems.ops path on the same formula (values, gradients, Hessian-vector products to
1e-10 relative), double backward and higher orders, the torch.func transforms, dtypes and
devices; the rule that picks the path (problems.torch_views); and the ridge-logistic plug-in
written in CasADi (tests/fixtures/ridge_logistic_casadi.py) through ``lossnav validate``.
"""
from __future__ import annotations

import importlib.util
import pathlib

import casadi
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocp
from learning_rules import curvature
from problems import Scenario, ops, torch_bridge, torch_views

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "ridge_logistic_casadi.py"
_spec = importlib.util.spec_from_file_location("ridge_logistic_casadi_fixture", FIXTURE)
ridge = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ridge)

F64 = torch.float64
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def ops_ridge_loss(theta, X, Y, lam, **_):
    """The fixture's ridge logistic loss written with problems.ops (native on torch)."""
    return ops.sum(ops.softplus(-Y * (X @ theta))) / X.shape[0] + 0.5 * lam * ops.dot(theta, theta)


def formula_scenario(loss, dim=3, constants=None, drift=None, metric=None, name="bridge_test"):
    """A scenario around one formula (θ0 = (1, −1, 0.5, …))."""
    class Formula(Scenario):
        defaults = {"gamma": 1.0}

        def build(self, params):
            return ocp.DiscountedOCP(dim=dim, loss=loss, gamma=params["gamma"], drift=drift, metric=metric,
                                     constants=constants or {}, name=name)

        def default_theta0(self):
            return np.resize([1.0, -1.0, 0.5], dim)
    Formula.name = name
    return Formula()


def ops_ridge():
    return formula_scenario(ops_ridge_loss, constants={"X": ridge.X, "Y": ridge.Y, "lam": 0.5},
                            name="ops_ridge")


def derivatives(loss, theta, direction):
    """(L, ∇L, H v) by autograd, double backward for the HVP."""
    theta = theta.detach().clone().requires_grad_(True)
    value = loss(theta)
    (gradient,) = torch.autograd.grad(value, theta, create_graph=True)
    (hvp,) = torch.autograd.grad(gradient, theta, direction)
    return value.detach(), gradient.detach(), hvp


def relative_gap(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64)
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-300))


def points(seed, dim=3):
    rng = np.random.default_rng(seed)
    return (torch.tensor(rng.normal(size=dim) * rng.uniform(0.1, 3), dtype=F64),
            torch.tensor(rng.normal(size=dim), dtype=F64))


# -- the bridge against the problems.ops path and against finite differences ------------------
@PROPERTY
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_bridge_agrees_with_the_ops_path_on_the_same_loss(seed):
    """The same problems.ops formula natively and through CasADi, and the CasADi-written fixture."""
    scenario = ops_ridge()
    assert torch_views.path(scenario, "loss") == torch_views.NATIVE
    theta, direction = points(seed)
    native = derivatives(scenario.torch_loss, theta, direction)
    bridged = derivatives(lambda x: torch_bridge.bridged(scenario.problem, "loss", x), theta, direction)
    written_in_casadi = ridge.RidgeLogistic(lam=0.5)
    assert torch_views.path(written_in_casadi, "loss") == torch_views.BRIDGE
    # the fixture's OCP carries L − L* (its declared loss_minimum)
    casadi_written = derivatives(lambda x: written_in_casadi.torch_loss(x) + written_in_casadi.loss_minimum,
                                 theta, direction)
    for ours in (bridged, casadi_written):
        for mine, reference in zip(ours, native, strict=True):
            assert relative_gap(mine, reference) <= 1e-10


@PROPERTY
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_bridge_agrees_with_finite_differences(seed):
    """∇L against central differences of L, H v against central differences of ∇L (O(h²) ≈ 1e-10)."""
    scenario = ridge.RidgeLogistic(lam=0.3)
    theta, direction = points(seed)
    value, gradient, hvp = derivatives(scenario.torch_loss, theta, direction)
    h = 1e-5
    with torch.no_grad():
        loss = scenario.torch_loss
        differences = torch.stack([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h)
                                   for e in torch.eye(3, dtype=F64)])
    assert relative_gap(gradient, differences) <= 1e-7
    step = h / float(direction.norm())
    ahead = torch.func.grad(scenario.torch_loss)(theta + step * direction)
    behind = torch.func.grad(scenario.torch_loss)(theta - step * direction)
    assert relative_gap(hvp, (ahead - behind) / (2 * step)) <= 1e-7
    assert torch.autograd.gradcheck(scenario.torch_loss, (theta.clone().requires_grad_(True),),
                                    check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(scenario.torch_loss, (theta.clone().requires_grad_(True),))


def test_double_backward_and_higher_orders():
    """Curvature rules' create_graph gradients, and third derivatives (jacrev of the Hessian)."""
    bridged, native = ridge.RidgeLogistic(lam=0.5), ops_ridge()
    theta, direction = points(1)
    leaf = theta.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(bridged.torch_loss(leaf), leaf, create_graph=True)
    (hvp,) = torch.autograd.grad(gradient @ direction, leaf, create_graph=True)
    (third,) = torch.autograd.grad(hvp @ direction, leaf)     # ∂(vᵀHv)/∂θ
    reference = torch.func.jacrev(torch.func.hessian(native.torch_loss))(theta)
    assert relative_gap(hvp.detach(), torch.func.hessian(native.torch_loss)(theta) @ direction) <= 1e-10
    assert relative_gap(third, torch.einsum("ijk,i,j->k", reference, direction, direction)) <= 1e-9
    assert relative_gap(torch.func.jacrev(torch.func.hessian(bridged.torch_loss))(theta), reference) <= 1e-9


def test_torch_func_transforms_and_batched_gradients():
    """grad, vjp/jvp over grad, jacrev, hessian, functional.hvp, vmap (one CasADi call per batch),
    and the exact Hessian of learning_rules (torch's is_grads_batched) all match the ops path."""
    bridged, native = ridge.RidgeLogistic(lam=0.5), ops_ridge()
    theta, direction = points(2)
    hessian = torch.func.hessian(native.torch_loss)(theta)
    f = bridged.torch_loss
    assert relative_gap(torch.func.grad(f)(theta), torch.func.grad(native.torch_loss)(theta)) <= 1e-10
    forward_over_reverse = torch.func.jvp(torch.func.grad(f), (theta,), (direction,))[1]
    assert relative_gap(forward_over_reverse, hessian @ direction) <= 1e-10
    reverse_over_reverse = torch.func.vjp(torch.func.grad(f), theta)[1](direction)[0]
    assert relative_gap(reverse_over_reverse, hessian @ direction) <= 1e-10
    assert relative_gap(torch.func.jacrev(torch.func.grad(f))(theta), hessian) <= 1e-10
    assert relative_gap(torch.func.jacfwd(torch.func.grad(f))(theta), hessian) <= 1e-10
    assert relative_gap(torch.autograd.functional.hvp(f, theta, direction)[1], hessian @ direction) <= 1e-10
    batch = torch.stack([theta + 0.1 * k * direction for k in range(5)])
    compiled = torch_views.compiled(bridged.problem, "loss").backward
    calls = compiled.calls
    batched = torch.func.vmap(torch.func.grad(f))(batch)
    assert compiled.calls == calls + 1                       # the batch is one CasADi call
    assert relative_gap(batched, torch.func.vmap(torch.func.grad(native.torch_loss))(batch)) <= 1e-10
    leaf = theta.clone().requires_grad_(True)
    loss, grads = curvature.closure_with_graph(lambda: f(leaf), [leaf])
    assert relative_gap(curvature.exact_hessian(grads, [leaf]), hessian) <= 1e-10


def test_dtypes_devices_and_bad_input():
    """float32 in, float32 out (float64 values rounded); integer tensors and wrong shapes are one line."""
    scenario = ridge.RidgeLogistic(lam=0.5)
    theta, _ = points(3)
    single = theta.float().requires_grad_(True)
    value = scenario.torch_loss(single)
    value.backward()
    assert value.dtype == torch.float32 and single.grad.dtype == torch.float32
    assert abs(float(value) - float(scenario.torch_loss(theta))) <= 1e-6 * abs(float(value))
    with pytest.raises(ocp.ProblemError, match="real floating-point") as error:
        scenario.torch_loss(torch.ones(3, dtype=torch.int64))
    assert "\n" not in str(error.value)
    with pytest.raises(ocp.ProblemError, match=r"ridge_logistic: loss expects θ as a tensor of shape \(3,\)"):
        scenario.torch_loss(torch.ones(4, dtype=F64))
    if torch.cuda.is_available():   # copied to the CPU in float64 and back (documented limit)
        on_device = scenario.torch_loss(theta.cuda())
        assert on_device.device.type == "cuda"
        assert relative_gap(on_device.cpu(), scenario.torch_loss(theta)) <= 1e-15


def test_compiled_once_per_structure_with_the_constants_as_inputs():
    first, second = ridge.RidgeLogistic(lam=0.5), ridge.RidgeLogistic(lam=2.0)
    compiled = torch_views.compiled(first.problem, "loss")
    assert torch_views.compiled(second.problem, "loss") is compiled
    replaced = first.problem.replace(lam=2.0)
    assert torch_views.compiled(replaced, "loss") is compiled
    theta, _ = points(4)
    native = ops_ridge()
    native.problem = native.problem.replace(lam=2.0)
    calls = compiled.calls
    first.problem = replaced          # the OCP carries L − L*(λ = 0.5), now at λ = 2
    assert relative_gap(first.torch_loss(theta) + first.loss_minimum, native.torch_loss(theta)) <= 1e-10
    assert relative_gap(second.torch_loss(theta) + second.loss_minimum, native.torch_loss(theta)) <= 1e-10
    assert compiled.calls == calls + 2


# -- which path, and the errors --------------------------------------------------------------
def test_drift_and_metric_written_in_casadi():
    """f = Aθ with casadi.mtimes(DM(A), θ) and G = diag(1 + θ²) with casadi.diag: bridged, with
    Jacobians (the drift_compensated rule's linearity check) and JVPs through CasADi."""
    A = np.array([[-1.0, 0.5, 0.0], [-0.5, -1.0, 0.2], [0.0, -0.2, -2.0]])
    scenario = formula_scenario(lambda theta: 0.5 * casadi.sumsqr(theta), name="casadi_flows",
                                drift=lambda theta: casadi.mtimes(casadi.DM(A), theta),
                                metric=lambda theta: casadi.diag(1 + theta ** 2))
    theta, direction = points(5)
    assert torch_views.path(scenario, "drift") == torch_views.BRIDGE
    assert relative_gap(torch.func.jacrev(scenario.torch_drift)(theta), torch.tensor(A)) <= 1e-15
    assert relative_gap(torch.func.jvp(scenario.torch_drift, (theta,), (direction,))[1],
                        torch.tensor(A) @ direction) <= 1e-14
    metric = scenario.torch_metric(theta)
    assert metric.shape == (3, 3) and relative_gap(metric, torch.diag(1 + theta ** 2)) <= 1e-15
    assert relative_gap(torch.func.jacrev(scenario.torch_metric)(theta),
                        torch.func.jacrev(lambda x: torch.diag(1 + x ** 2))(theta)) <= 1e-15
    from lossnav.validation import rule_runner
    assert relative_gap(rule_runner._drift_options(scenario)["drift_matrix"], torch.tensor(A)) <= 1e-14


def test_the_path_is_decided_once_even_inside_a_transform():
    """The first call may come from inside torch.func.grad or no_grad: the probe runs clean."""
    scenario = ridge.RidgeLogistic(lam=0.5)
    theta, _ = points(6)
    with torch.no_grad():
        inside = torch.func.grad(scenario.torch_loss)(theta)
    assert relative_gap(inside, torch.func.grad(ops_ridge().torch_loss)(theta)) <= 1e-10
    assert scenario._torch_paths["loss"][1] == torch_views.BRIDGE
    constant_metric = formula_scenario(ops_ridge_loss, metric=lambda theta, G, **_: G, name="constant_metric",
                                       constants={"X": ridge.X, "Y": ridge.Y, "lam": 0.5, "G": np.eye(3)})
    assert relative_gap(constant_metric.torch_metric(theta), torch.eye(3, dtype=F64)) == 0
    assert torch_views.path(constant_metric, "metric") == torch_views.NATIVE   # independent of θ


def _on_torch(casadi_value, torch_value):
    """A formula that is ``casadi_value`` on CasADi symbols and ``torch_value`` on tensors."""
    def loss(theta):
        return torch_value(theta) if isinstance(theta, torch.Tensor) else casadi_value(theta)
    return loss


@pytest.mark.parametrize("loss, words", [
    (_on_torch(casadi.sumsqr, lambda theta: {}.get("scale") * theta.sum()),
     "fails on torch tensors (TypeError"),
    (_on_torch(casadi.sumsqr, lambda theta: 2 * (theta * theta).sum()), "disagrees with the same formula"),
    (_on_torch(casadi.sumsqr, lambda theta: torch.tensor(float((theta * theta).sum()), dtype=F64)),
     "not connected to θ"),
    (_on_torch(casadi.sumsqr, lambda theta: (theta * theta).detach().numpy().sum()),
     "returns float64, not a tensor"),
    (_on_torch(casadi.sumsqr, lambda theta: theta * theta), "has shape (3,), expected ()"),
])
def test_a_torch_path_that_is_wrong_is_one_line_naming_the_scenario(loss, words):
    scenario = formula_scenario(loss, name="wrong_on_torch")
    with pytest.raises(ocp.ProblemError) as error:
        scenario.torch_loss(torch.ones(3, dtype=F64, requires_grad=True))
    message = str(error.value)
    assert message.startswith("wrong_on_torch: its loss") and words in message and "\n" not in message


@pytest.mark.parametrize("loss, words", [
    (lambda theta: __import__("math").exp(theta[0]), "math.* functions and float() do not work on symbols"),
    (lambda theta: __import__("scipy").special.expit(theta[0]), "could not be evaluated on CasADi symbols"),
    (lambda theta: casadi.mtimes(casadi.DM(np.ones((2, 2))), theta)[0], "could not be evaluated on CasADi"),
])
def test_a_loss_neither_path_evaluates_is_one_line_naming_the_scenario(loss, words):
    with pytest.raises(ocp.ProblemError) as error:
        formula_scenario(loss, name="neither")
    message = str(error.value)
    assert message.startswith("neither: ") and words in message and "\n" not in message
    assert len(message) < 400                      # CasADi's list of overloads cut to its first line


@pytest.mark.parametrize("loss", [
    lambda theta: casadi.sumsqr(theta),                                     # raises inside casadi
    lambda theta: casadi.sum1(casadi.DM(np.ones(3)) * theta),               # DM * Tensor: TypeError
    lambda theta: casadi.sum1(np.exp(theta)),                              # numpy gets the tensor
])
def test_casadi_or_numpy_written_losses_take_the_bridge(loss):
    scenario = formula_scenario(loss, name="written_for_casadi")
    assert torch_views.path(scenario, "loss") == torch_views.BRIDGE


# -- the ridge-logistic plug-in through the command line --------------------------------------
@pytest.fixture
def fresh_registry(monkeypatch):
    from lossnav import plugins
    from problems import registry
    monkeypatch.setattr(registry, "_SCENARIOS", dict(registry._SCENARIOS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    monkeypatch.setattr(plugins, "_LOADED", [])


def test_lossnav_validate_passes_the_casadi_written_plugin(fresh_registry, capsys):
    import json

    from lossnav import cli
    code = cli.main(["validate", "ridge_logistic", "--plugin", str(FIXTURE), "--draws", "1",
                     "--gammas", "0,1", "--json"])
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert code == 0, (err, rows)
    assert len(rows) == 4 and all(row["passed"] for row in rows)
    ran = {rule["rule"] for row in rows for rule in row["rules"] if "diverged" not in rule}
    assert {"optimal_quadratic", "ballistic", "gradient_descent", "natural_gradient"} <= ran


BAD_PLUGIN = '''
import math
import numpy as np
import ocp
from problems import Scenario


class MathExp(Scenario):
    name = "math_exp_loss"
    defaults = {"gamma": 1.0}

    def build(self, params):
        return ocp.DiscountedOCP(dim=1, loss=lambda theta: math.exp(theta[0]), gamma=params["gamma"])

    def default_theta0(self):
        return np.array([0.5])
'''


@pytest.mark.parametrize("command", [["validate", "math_exp_loss"], ["solve", "math_exp_loss"],
                                     ["solve", "math_exp_loss", "--method", "rule:ballistic", "--dt", "0.1"]])
def test_the_cli_error_of_an_unevaluable_loss_is_one_line(fresh_registry, tmp_path, capsys, command):
    from lossnav import cli
    path = tmp_path / "math_exp_plugin.py"
    path.write_text(BAD_PLUGIN, encoding="utf-8")
    assert cli.main([*command, "--plugin", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("lossnav: error: math_exp_loss: loss evaluates to a non-finite")


TORCH_BUG_PLUGIN = '''
import casadi
import numpy as np
import ocp
from problems import Scenario


def loss(theta):
    if isinstance(theta, casadi.SX):
        return casadi.sumsqr(theta)
    raise KeyError("the torch branch is unfinished")


class TorchBug(Scenario):
    name = "torch_bug"
    defaults = {"gamma": 1.0}

    def build(self, params):
        return ocp.DiscountedOCP(dim=2, loss=loss, gamma=params["gamma"])

    def default_theta0(self):
        return np.array([0.5, 1.0])

    def fixed_point(self):
        return np.zeros(2)
'''


@pytest.mark.parametrize("command", [
    ["validate", "torch_bug", "--draws", "0", "--gammas", "1"],
    ["solve", "torch_bug", "--method", "rule:gradient_descent", "--dt", "0.1"],
])
def test_the_cli_error_of_a_broken_torch_path_is_one_line(fresh_registry, tmp_path, capsys, command):
    """The engine solves it (CasADi evaluates the loss); the torch rules stop with one line."""
    from lossnav import cli
    path = tmp_path / "torch_bug_plugin.py"
    path.write_text(TORCH_BUG_PLUGIN, encoding="utf-8")
    assert cli.main([*command, "--plugin", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("lossnav: error: torch_bug: its loss fails on torch tensors (KeyError")
