"""problems.ops: softplus, log1p and logsumexp stay finite and exact on CasADi, torch and numpy,
with the right gradients (σ(z) and softmax), where the naive formulas overflow."""
from __future__ import annotations

import math

import casadi
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from problems import ops

POINTS = [-1000.0, -40.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 40.0, 1000.0]


def exact_softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def casadi_value_and_gradient(function, value):
    x = casadi.SX.sym("x", np.size(value))
    out = function(x)
    evaluate = casadi.Function("f", [x], [out, casadi.gradient(casadi.sum1(out), x)])
    f, g = evaluate(np.atleast_1d(value))
    return np.asarray(f, float).ravel(), np.asarray(g, float).ravel()


def torch_value_and_gradient(function, value, dtype=torch.float64):
    x = torch.tensor(np.atleast_1d(value), dtype=dtype, requires_grad=True)
    out = function(x)
    out.sum().backward()
    return out.detach().double().numpy().ravel(), x.grad.double().numpy()


@pytest.mark.parametrize("z", POINTS)
def test_softplus_on_every_backend(z):
    expected, slope = exact_softplus(z), sigmoid(z)
    f, g = casadi_value_and_gradient(ops.softplus, z)
    assert f[0] == pytest.approx(expected, rel=1e-14, abs=1e-300)
    assert g[0] == pytest.approx(slope, rel=1e-14, abs=1e-300)
    f, g = torch_value_and_gradient(ops.softplus, z)
    assert f[0] == pytest.approx(expected, rel=1e-14, abs=1e-300)
    assert g[0] == pytest.approx(slope, rel=1e-14, abs=1e-300)
    assert float(ops.softplus(np.float64(z))) == pytest.approx(expected, rel=1e-14, abs=1e-300)


def test_softplus_where_the_naive_form_fails():
    # the naive torch formula overflows in float32 (e^89 = inf) and its gradient is nan there
    z = torch.tensor([89.0, 200.0], dtype=torch.float32, requires_grad=True)
    naive = torch.log(1 + torch.exp(z))
    assert torch.isinf(naive).all()
    f, g = torch_value_and_gradient(ops.softplus, [89.0, 200.0], dtype=torch.float32)
    assert np.allclose(f, [89.0, 200.0]) and np.allclose(g, 1.0)
    # and loses every digit for very negative z in log(1 + e^z) computed as log(1 + tiny)
    tiny = ops.softplus(torch.tensor(-50.0, dtype=torch.float64)).detach()
    assert float(tiny) == pytest.approx(math.exp(-50), rel=1e-14)


@pytest.mark.parametrize("x", [1e-17, 1e-10, 0.5, 1e6])
def test_log1p_keeps_small_arguments(x):
    f, g = casadi_value_and_gradient(ops.log1p, x)
    assert f[0] == pytest.approx(math.log1p(x), rel=1e-15) and g[0] == pytest.approx(1 / (1 + x), rel=1e-15)
    f, g = torch_value_and_gradient(ops.log1p, x)
    assert f[0] == pytest.approx(math.log1p(x), rel=1e-15) and g[0] == pytest.approx(1 / (1 + x), rel=1e-15)
    assert ops.log1p(np.float64(x)) == pytest.approx(math.log1p(x), rel=1e-15)


@pytest.mark.parametrize("values", [[1000.0, 1000.0, 0.0], [-1000.0, -1001.0, -1002.0], [0.1, -0.3, 2.0]])
def test_logsumexp_on_every_backend(values):
    x = np.array(values)
    shift = x.max()
    expected = shift + math.log(np.exp(x - shift).sum())
    softmax = np.exp(x - expected)
    casadi_x = casadi.SX.sym("x", 3)
    symbolic = ops.logsumexp(casadi_x)
    evaluate = casadi.Function("f", [casadi_x], [symbolic, casadi.gradient(symbolic, casadi_x)])
    f, g = evaluate(x)
    assert float(f) == pytest.approx(expected, rel=1e-14)
    assert np.allclose(np.asarray(g).ravel(), softmax, rtol=1e-13)
    t = torch.tensor(x, requires_grad=True)
    value = ops.logsumexp(t)
    value.backward()
    assert float(value.detach()) == pytest.approx(expected, rel=1e-14)
    assert np.allclose(t.grad.numpy(), softmax, rtol=1e-13)
    assert ops.logsumexp(x) == pytest.approx(expected, rel=1e-14)


FINITE = st.floats(min_value=-700.0, max_value=700.0, allow_nan=False)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(z=FINITE)
def test_softplus_property_torch_and_casadi_agree_with_numpy(z):
    expected = float(np.logaddexp(0.0, z))
    slope = float(np.exp(z - np.logaddexp(0.0, z)))          # σ(z) without overflow
    f, g = torch_value_and_gradient(ops.softplus, z)
    assert f[0] == pytest.approx(expected, rel=1e-13, abs=1e-300)
    assert g[0] == pytest.approx(slope, rel=1e-12, abs=1e-300)
    f, g = casadi_value_and_gradient(ops.softplus, z)
    assert f[0] == pytest.approx(expected, rel=1e-13, abs=1e-300)
    assert g[0] == pytest.approx(slope, rel=1e-12, abs=1e-300)


@settings(max_examples=30, derandomize=True, deadline=None)
@given(values=st.lists(FINITE, min_size=1, max_size=6))
def test_logsumexp_property_matches_scipy(values):
    from scipy.special import logsumexp as reference
    x = np.array(values)
    t = torch.tensor(x, requires_grad=True)
    value = ops.logsumexp(t)
    value.backward()
    assert float(value.detach()) == pytest.approx(reference(x), rel=1e-13, abs=1e-13)
    assert np.allclose(t.grad.numpy(), np.exp(x - reference(x)), rtol=1e-12, atol=1e-300)
    assert ops.logsumexp(x) == pytest.approx(reference(x), rel=1e-13, abs=1e-13)
