"""digits_mlp (problems.network, issue 25): its parameters, θ0 and torch loss, bad settings, its
validation cases, and the report's path figure. (Its matrix-free reference takes minutes even for
a tiny network on 2 cores: it is exercised by benchmarks/bench_network.py and ``lossnav validate
digits_mlp``, not here; the solver itself is tested on small losses in tests/test_matrix_free.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import ocp
from lossnav.validation import cases
from problems import get
from problems.network import parameter_count

SMALL = {"hidden": 2, "samples": 60}


@pytest.fixture(scope="module")
def scenario():
    return get("digits_mlp", **SMALL)


def test_the_parameter_count_and_theta0(scenario):
    assert scenario.dim == parameter_count(2) == 2 * 65 + 10 * 3
    assert get("digits_mlp").dim == 5410               # the default network: at least 5,000 parameters
    theta0 = scenario.theta0
    assert np.abs(theta0[:2 * 64]).max() <= 1 / 8       # nn.Linear's U(±1/√fan_in)


def test_the_torch_loss_is_the_engine_loss(scenario):
    import torch
    theta = scenario.theta0 + 0.1
    native = float(scenario.torch_loss(torch.as_tensor(theta)))
    assert native == pytest.approx(scenario.problem.loss.value(theta), rel=1e-14)


def test_bad_settings_are_problem_errors():
    for settings, match in (({"hidden": 0}, "hidden"), ({"weight_decay": 0.0}, "weight_decay"),
                            ({"samples": 5000}, "samples")):
        with pytest.raises(ocp.ProblemError, match=match):
            get("digits_mlp", **settings)


def test_validate_all_leaves_it_to_validation_by_name():
    assert "digits_mlp" not in cases.default_selection()
    labels = [case.label for case in cases.cases("digits_mlp", draws=0, settings=SMALL)]
    assert labels == ["paper defaults, γ=1, H=10", "paper defaults, γ=1"]


def test_the_report_figure_of_paths(tmp_path):
    from lossnav.figures.network import path_comparison
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 20)
    optimal = np.outer(np.exp(-t), rng.normal(size=6)) + np.outer(t, rng.normal(size=6))
    projected = path_comparison(tmp_path / "paths", (t, optimal), {"sgd": (t, optimal + 0.01)},
                                lambda theta: float(theta @ theta) + 1.0)
    assert (tmp_path / "paths.png").stat().st_size > 0 and (tmp_path / "paths.pdf").exists()
    assert projected["optimal"].shape == (20, 2)
    np.testing.assert_allclose(projected["optimal"][0], 0.0)
