"""validate_optimizer: a user's torch optimizer against the collocation reference and its declared
limit flow (docs/learning_rules.md, "Which flow a rule converges to").

* plain gradient descent, lr = ηkΔt/γ: order ≈ 1 to gradient flow θ̇ = −(ηk/γ)∇L, and no
  convergence to the optimal path (the error to it plateaus);
* heavy ball with α = aΔt², β = 1 − cΔt: order ≈ 1 to θ̈ + cθ̇ = −a∇L from rest, not to the
  optimal path (which solves θ̈ − γθ̇ = ηk∇L on its stable manifold);
* heavy ball with a fixed β and α = bΔt(1 − β): order ≈ 1 to gradient flow θ̇ = −b∇L;
* the optimal rule (Newton-like, exact curvature) on a quadratic: exact at every Δt;
* bad input: one line, a named exception; the CLI's JSON contract.
"""
from __future__ import annotations

import json

import pytest
import torch

import problems
from learning_rules import OptimalQuadratic
from lossnav import cli
from lossnav.validation import OptimizerCheckError, cases, damped_flow, validate_optimizer

GAMMA = 2.0
DTS = (0.02, 0.01)
HORIZON = 1.0


@pytest.fixture(scope="module")
def setting():
    """A quadratic (curvatures 1 and 4, γ = 2) and its collocation reference, solved once."""
    scenario = problems.get("quadratic", H=[1.0, 4.0], gamma=GAMMA)
    reference, _ = cases.reference(scenario, scenario.theta0)
    return scenario, reference


def check(setting, factory, limit=None, dts=DTS):
    scenario, reference = setting
    return validate_optimizer(factory, scenario, dts, horizon=HORIZON, limit=limit, reference=reference)


def test_gradient_descent_converges_to_gradient_flow_with_order_one(setting):
    result = check(setting, lambda params, dt: torch.optim.SGD(params, lr=dt / GAMMA), limit="gradient_flow")
    assert result.order_limit == pytest.approx(1.0, abs=0.1)
    assert result.converges_to_limit and result.passed and result.verdict.startswith("pass")
    # gradient flow is the large-γ limit only: at γ = 2 its error to the optimal path stays O(1)
    assert not result.converges_to_reference and abs(result.order_reference) < 0.2
    assert [row["dt"] for row in result.rows] == list(DTS)
    assert all(row["error_limit"] < 0.05 < row["error_reference"] for row in result.rows)


def test_heavy_ball_converges_to_its_damped_second_order_flow_not_the_optimal_path(setting):
    damping, gain = 3.0, 1.5

    def heavy_ball(params, dt):
        return torch.optim.SGD(params, lr=gain * dt ** 2, momentum=1 - damping * dt)
    result = check(setting, heavy_ball, limit=damped_flow(damping, gain))
    assert result.order_limit == pytest.approx(1.0, abs=0.1) and result.passed
    assert not result.converges_to_reference and result.rows[-1]["error_reference"] > 0.05
    # the same optimizer judged against the optimal path fails (no limit declared)
    assert not check(setting, heavy_ball).passed


def test_heavy_ball_with_fixed_momentum_converges_to_gradient_flow(setting):
    beta = 0.5      # α = (ηk/γ)Δt(1 − β): the effective step α/(1 − β) of a fixed momentum

    def heavy_ball(params, dt):
        return torch.optim.SGD(params, lr=dt / GAMMA * (1 - beta), momentum=beta)
    result = check(setting, heavy_ball, limit="gradient_flow", dts=(0.01, 0.005))
    # order 1 asymptotically, approached slowly (the O(Δt) start-up layer of the velocity):
    # measured 0.76, 0.84, 0.90 at Δt = 0.04 → 0.005
    assert result.order_limit == pytest.approx(1.0, abs=0.15) and result.passed


def test_the_optimal_rule_is_exact_on_a_quadratic(setting):
    scenario = setting[0]

    def factory(params, dt):
        return OptimalQuadratic(params, lr=dt, eta=1.0, k=1.0, gamma=GAMMA, curvature="exact")
    result = check(setting, factory, limit="optimal")
    assert result.passed and result.converges_to_reference
    assert max(row["error_reference"] for row in result.rows) < 1e-8, result.rows
    assert "exact" in result.verdict or "converges" in result.verdict
    assert scenario.name == "quadratic"


@pytest.mark.parametrize("kwargs, words", [
    ({"factory": lambda params, dt: "not an optimizer"}, "must return a torch.optim.Optimizer"),
    ({"dts": (0.1,)}, "at least two distinct"),
    ({"dts": (0.1, -0.05)}, "at least two distinct"),
    ({"limit": "newton"}, "limit must be None"),
    ({"horizon": float("inf")}, "horizon must be a finite number"),
])
def test_bad_input_is_a_named_error(setting, kwargs, words):
    scenario, reference = setting
    arguments = {"factory": lambda params, dt: torch.optim.SGD(params, lr=dt), "scenario": scenario,
                 "dts": DTS, "horizon": HORIZON, "reference": reference, **kwargs}
    with pytest.raises(OptimizerCheckError, match=words):
        validate_optimizer(**arguments)


def test_divergence_is_reported_not_hidden(setting):
    # lr = 1e5·Δt: the stiff mode grows by ≈ 4e5Δt per step and overflows at Δt = 0.01
    result = check(setting, lambda params, dt: torch.optim.SGD(params, lr=1e5 * dt), dts=(0.02, 0.01))
    assert not result.passed and "diverged" in result.verdict
    # caught at the first step whose loss overflows, before θ itself is inf/NaN
    assert result.rows[-1]["diverged"].startswith("the loss is inf at step ")
    assert result.rows[-1]["error_reference"] == float("inf")


def test_cli_json_contract(tmp_path, capsys):
    factory = tmp_path / "my_optimizer.py"
    factory.write_text("import torch\n\ndef gd(params, dt):\n    return torch.optim.SGD(params, lr=dt / 4)\n")
    code = cli.main(["validate", "quadratic", "--set", "H=[2]", "--set", "gamma=4",
                     "--optimizer", f"{factory}:gd", "--dt", "0.04,0.02", "--horizon", "0.5",
                     "--limit", "gradient_flow", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [row["dt"] for row in out["rows"]] == [0.04, 0.02]
    assert all({"dt", "error_reference", "error_limit"} <= set(row) for row in out["rows"])
    assert out["order_limit"] == pytest.approx(1.0, abs=0.1) and "order_reference" in out
    # malformed: --dt without --optimizer, one step size, a factory spec without a name
    assert cli.main(["validate", "quadratic", "--dt", "0.1,0.05"]) == 2
    assert cli.main(["validate", "quadratic", "--optimizer", f"{factory}:gd", "--dt", "0.1"]) == 2
    assert cli.main(["validate", "quadratic", "--optimizer", str(factory), "--dt", "0.1,0.05"]) == 2
    assert cli.main(["validate", "quadratic", "--optimizer", f"{factory}:nothing", "--dt", "0.1,0.05"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 4 and all(line.startswith("lossnav: error:") for line in errors)
