"""problems.torch_loss.TorchLoss (issue 25): values, gradients and HVPs of a torch loss for the
engine, against finite differences and against the same loss written in CasADi; an nn.Module's
full-batch loss through ocp.solve."""
from __future__ import annotations

import casadi
import numpy as np
import pytest
import torch

import ocp
from problems.torch_loss import TorchLoss

RNG = np.random.default_rng(7)
X, Y = RNG.normal(size=(20, 3)), (RNG.random(20) > 0.5).astype(float)
DECAY = 0.1


def logistic_torch(theta):
    z = torch.as_tensor(X) @ theta
    data = torch.nn.functional.softplus(z).mean() - (torch.as_tensor(Y) * z).mean()
    return data + 0.5 * DECAY * theta @ theta


def logistic_casadi(theta):
    z = casadi.mtimes(casadi.DM(X), theta)
    softplus = casadi.log(1 + casadi.exp(z))
    data = casadi.sum1(softplus) / 20 - casadi.dot(casadi.DM(Y), z) / 20
    return data + 0.5 * DECAY * casadi.dot(theta, theta)


@pytest.fixture(scope="module")
def losses():
    native = TorchLoss(logistic_torch, 3, name="logistic")
    through_casadi = ocp.ExternalLoss.from_casadi(ocp.DiscountedOCP(3, logistic_casadi, gamma=0.5))
    return native, through_casadi


def test_values_gradients_and_hvps_agree_with_casadi(losses):
    native, through_casadi = losses
    thetas, vs = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))
    for theta, v in zip(thetas, vs, strict=True):
        assert native.value(theta) == pytest.approx(through_casadi.value(theta), abs=1e-12)
        np.testing.assert_allclose(native.gradient(theta), through_casadi.gradient(theta), atol=1e-12)
        np.testing.assert_allclose(native.hvp(theta, v), through_casadi.hvp(theta, v), atol=1e-12)
    np.testing.assert_allclose(native.gradients(thetas), through_casadi.gradients(thetas), atol=1e-12)
    np.testing.assert_allclose(native.hvps(thetas, vs), through_casadi.hvps(thetas, vs), atol=1e-12)


def test_derivatives_agree_with_central_differences(losses):
    native, _ = losses
    theta, v, h = RNG.normal(size=3), RNG.normal(size=3), 1e-5
    basis = np.eye(3)
    numeric = [(native.value(theta + h * e) - native.value(theta - h * e)) / (2 * h) for e in basis]
    np.testing.assert_allclose(native.gradient(theta), numeric, atol=1e-9)
    numeric_hvp = (native.gradient(theta + h * v) - native.gradient(theta - h * v)) / (2 * h)
    np.testing.assert_allclose(native.hvp(theta, v), numeric_hvp, atol=1e-9)


def test_a_module_loss_solves_through_ocp_solve():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)).double()
    inputs, targets = torch.as_tensor(X), torch.as_tensor(Y)[:, None]
    loss = TorchLoss.from_module(module, torch.nn.functional.mse_loss, inputs, targets, weight_decay=DECAY)
    theta0 = loss.initial_theta()
    assert theta0.shape == (loss.dim,) == (sum(p.numel() for p in module.parameters()),)
    v, h = RNG.normal(size=loss.dim), 1e-5       # F.mse_loss takes the reverse-over-reverse HVP
    numeric = (loss.gradient(theta0 + h * v) - loss.gradient(theta0 - h * v)) / (2 * h)
    np.testing.assert_allclose(loss.hvp(theta0, v), numeric, atol=1e-9)
    problem = ocp.DiscountedOCP(loss.dim, loss, gamma=0.5)
    path = ocp.solve(problem, theta0, 1.0)
    assert path.stats["solver"] == "matrix_free"
    assert path.stats["euler_lagrange_error"] <= 1e-6
    assert loss.value(path.theta[-1]) < loss.value(theta0)


def test_bad_torch_losses_are_problem_errors():
    with pytest.raises(ocp.ProblemError, match="callable"):
        TorchLoss("not a function", 3)
    with pytest.raises(ocp.ProblemError, match="nn.Module"):
        TorchLoss.from_module(lambda x: x, torch.nn.functional.mse_loss, X, Y)
    module = torch.nn.Linear(3, 1).double()
    with pytest.raises(ocp.ProblemError, match="weight_decay"):
        TorchLoss.from_module(module, torch.nn.functional.mse_loss, X, Y, weight_decay=-1.0)
    with pytest.raises(ocp.ProblemError, match="initial theta"):
        TorchLoss(logistic_torch, 3).initial_theta()
    with pytest.raises(ocp.ProblemError, match="logistic"):
        TorchLoss(logistic_torch, 3, name="logistic").gradient(np.zeros(4))


def test_krylov_hvps_are_float32_close_and_the_exact_ones_float64():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    loss = TorchLoss.from_module(net, torch.nn.functional.mse_loss, X, Y[:, None], weight_decay=DECAY)
    thetas = loss.initial_theta() + 0.1 * RNG.normal(size=(4, loss.dim))
    vs = RNG.normal(size=(4, loss.dim))
    exact, krylov = loss.hvps(thetas, vs), loss.hvps(thetas, vs, krylov=True)
    gap = np.abs(krylov - exact).max() / np.abs(exact).max()
    assert loss.krylov_dtype == torch.float32
    assert 0 < gap < 1e-5                       # float32: inexact, close
    single = np.stack([loss.hvp(theta, v) for theta, v in zip(thetas, vs, strict=True)])
    np.testing.assert_allclose(exact, single, rtol=1e-12, atol=1e-14)


def test_a_float64_only_function_falls_back_to_exact_krylov_hvps(losses):
    native, _ = losses                  # logistic_torch multiplies by float64 data: float32 fails
    loss = TorchLoss(logistic_torch, 3, name="logistic")
    thetas, vs = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3))
    np.testing.assert_array_equal(loss.hvps(thetas, vs, krylov=True), native.hvps(thetas, vs))
    assert loss.krylov_dtype == torch.float64
