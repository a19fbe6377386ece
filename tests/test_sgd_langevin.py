"""sgd_langevin: the OU model of heavy-ball SGD (Kunin et al. 2021) against itself and torch SGD."""
import argparse
import json

import numpy as np
import pytest
import scipy.linalg
import torch

import ocp
from lossnav.cli import langevin as langevin_cli
from lossnav.validation.sgd_simulation import compare, make_regression, scenario_for, simulate
from problems.sgd_langevin import SGDLangevinScenario


def hessian_scenario(rho=(2.0, 0.5, 0.05), lr=0.05, momentum=0.9, weight_decay=0.01, batch=8, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(rho), len(rho))))
    H = q @ np.diag(rho) @ q.T
    return SGDLangevinScenario(H=H, sigma2=0.3, mu=np.arange(len(rho)), lr=lr, momentum=momentum,
                       weight_decay=weight_decay, batch=batch)


def lr_for(data, ratio, momentum, weight_decay=0.0):
    """lr with lr·λ_max/(1 − β) = ratio."""
    top = np.linalg.eigvalsh(data.X.T @ data.X / len(data.X)).max() + weight_decay
    return ratio * (1 - momentum) / top


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.5, 0.1), (0.9, 0.01), (0.99, 0.0)])
def test_lyapunov_matches_closed_form(momentum, weight_decay):
    s = hessian_scenario(momentum=momentum, weight_decay=weight_decay)
    A, D = s.drift(), s.diffusion()
    B = s.kappa * s.stationary_covariance("lyapunov")
    assert np.abs(A @ B + B @ A.T - 2 * D).max() < 1e-12 * np.abs(D).max()
    assert s.covariance_check() < 1e-10
    px, pv = s.eigen_variances()
    assert pv.sum() * s.lr ** 2 == pytest.approx(s.instantaneous_speed(), rel=1e-12)   # Eq. 16


def test_decomposition_and_current():
    s = hessian_scenario()
    U, Q = s.decomposition("closed_form")
    assert np.allclose(s.drift(), (s.diffusion() + Q) @ U, atol=1e-12)
    assert np.allclose(Q, -Q.T)
    assert np.linalg.eigvalsh(U).min() > 0
    U2, Q2 = s.decomposition("lyapunov")
    assert np.allclose(U2, U, rtol=1e-9, atol=1e-9 * np.abs(U).max())
    assert np.allclose(Q2, Q, atol=1e-9 * np.abs(Q).max())
    # the current is tangent to the level sets of Ψ and its drift part QU = [[0, -I], [(H+λI)/m, 0]]
    rng = np.random.default_rng(1)
    theta, v = s.mu + 0.05 * rng.normal(size=(5, 3)), 0.05 * rng.normal(size=(5, 3))
    J = s.stationary_current(theta, v)
    gradient = np.concatenate([theta - s.mu, v], axis=1) @ U
    assert np.abs(np.einsum("ni,ni->n", J, gradient)).max() < 1e-10 * np.abs(J).max() * np.abs(gradient).max()
    K = s.H + s.weight_decay * np.eye(3)
    assert np.allclose(Q @ U, np.block([[np.zeros((3, 3)), -np.eye(3)], [K / s.mass, np.zeros((3, 3))]]))


@pytest.mark.parametrize("momentum, lr", [(0.9, 0.05), (0.0, 0.001), (0.99, 1.0)])
def test_mean_trajectory_is_the_ou_mean(momentum, lr):
    """The damped oscillators of Eq. 7 equal e^{−At}(z0 − z*) (under- and overdamped modes)."""
    s = hessian_scenario(momentum=momentum, lr=lr)
    theta0, v0 = s.mu + np.array([1.0, -0.5, 0.3]), np.array([0.2, 0.0, -0.1])
    theta, v = s.mean_trajectory(theta0, 50, v0=v0)
    for k in (0, 7, 50):
        z = scipy.linalg.expm(-s.drift() * k * s.lr) @ np.concatenate([theta0 - s.mu, v0])
        assert np.allclose(theta[k] - s.mu, z[:3], atol=1e-10) and np.allclose(v[k], z[3:], atol=1e-10)


def test_discrete_covariance_has_the_o_eta_factor():
    """Discrete heavy ball with noise σ²H/S: every stationary variance is the OU one times
    1/(1 − η(ρ+λ)/(2(1+β))) (docs/sgd_langevin.md); it tends to the OU one as η → 0."""
    for lr in (0.05, 0.5):
        s = hessian_scenario(lr=lr, momentum=0.5)
        px, pv = s.eigen_variances()
        dx, dv = s.eigen_variances_discrete("paper")
        factor = 1 / (1 - lr * (s.rho + s.weight_decay) / (2 * (1 + s.momentum)))
        assert np.allclose(dx, px * factor, rtol=1e-9) and np.allclose(dv, pv * factor, rtol=1e-9)


def test_displacement_forms():
    s = hessian_scenario(lr=0.02)
    lags = np.array([1, 2, 5, 20, 200, 5000])
    eq17, ou = s.global_displacement(lags), s.global_displacement_ou(lags)
    assert eq17[0] == pytest.approx(s.instantaneous_speed(), rel=1e-12)   # one step: E‖δ‖²
    px, _ = s.eigen_variances()
    assert ou[-1] == pytest.approx(2 * px.sum(), rel=1e-3)                   # confined: saturates
    assert eq17[-1] > 1.5 * ou[-1]            # the printed sum keeps growing (docs: spurious drift)
    assert np.allclose(eq17[:3], ou[:3], rtol=0.1)


@pytest.fixture(scope="module")
def data():
    return make_regression(3, 20000, 0.5, spectrum=[1.0, 0.4, 0.1], seed=3)   # Σ₀ scatter ~ √(8/N)


def test_speed_and_variances_match_torch_sgd(data):
    """Acceptance at small size: speed within 10 %, variances within 15 % of the OU model."""
    for momentum, ratio, batch in ((0.9, 0.3, 16), (0.5, 0.1, 32)):
        s = scenario_for(data, lr=lr_for(data, ratio, momentum), momentum=momentum, batch=batch)
        report = compare(s, simulate(s, 6000, chains=32, seed=11))
        speed = report["instantaneous_speed"]
        assert abs(speed["ratio"] - 1) < 0.10, speed
        assert abs(speed["ratio_exact"] - 1) < 0.03, speed
        for key in ("position", "velocity"):
            var = report["stationary_variance"][key]
            assert np.all(np.abs(np.array(var["ratio"]) - 1) < 0.15), (key, var)
            assert np.all(np.abs(np.array(var["ratio_exact"]) - 1) < 0.06), (key, var)
        mean = report["mean_trajectory_error"]
        assert mean["continuous"] < 0.1 and mean["discrete"] < 4 * mean["noise_floor"] + 0.01, mean
        exponent = report["diffusion_exponent"]
        assert abs(exponent["measured"] - exponent["predicted_exact"]) < 0.08, exponent


def test_exact_discrete_prediction_where_the_continuous_model_fails(data):
    """Plain SGD, batch 2, η·λ_max = 0.5: the OU model is off by more than 15 % (O(η) and
    state-dependent noise); the exact second moments of the recursion still hold."""
    s = scenario_for(data, lr=lr_for(data, 0.5, 0.0), momentum=0.0, batch=2)
    report = compare(s, simulate(s, 4000, chains=32, seed=5))
    speed = report["instantaneous_speed"]
    assert speed["ratio"] > 1.15
    assert abs(speed["ratio_exact"] - 1) < 0.03
    assert np.all(np.abs(np.array(report["stationary_variance"]["position"]["ratio_exact"]) - 1) < 0.08)


@pytest.fixture(scope="module")
def small_data():
    return make_regression(3, 1000, 0.5, spectrum=[1.0, 0.4, 0.1], seed=3)


def test_weight_decay_noise_is_not_sigma2_h(small_data):
    """With weight decay SGD hovers around the ridge solution μ ≠ θ̄, where the gradient noise
    has the bias part (δᵀHδ)H + HδδᵀH, δ = θ̄ − μ (docs §2): Assumption 3 fails, the exact
    noise model holds."""
    lam = 0.05
    data = small_data
    s = scenario_for(data, lr=lr_for(data, 0.1, 0.5, lam), momentum=0.5, batch=32, weight_decay=lam)
    report = compare(s, simulate(s, 4000, chains=32, seed=11))
    assert abs(report["instantaneous_speed"]["ratio_exact"] - 1) < 0.03
    assert np.all(np.abs(np.array(report["stationary_variance"]["position"]["ratio_exact"]) - 1) < 0.08)
    assert max(report["stationary_variance"]["position"]["ratio"]) > 1.3


def test_without_replacement_noise_factor(small_data):
    small = small_data
    s = scenario_for(small, lr=0.05, momentum=0.5, batch=200, replacement=False)
    report = compare(s, simulate(s, 2000, chains=16, seed=2))
    assert abs(report["instantaneous_speed"]["ratio_exact"] - 1) < 0.04
    with_replacement = scenario_for(small, lr=0.05, momentum=0.5, batch=200)
    assert (s.instantaneous_speed_discrete("exact") / with_replacement.instantaneous_speed_discrete("exact")
            == pytest.approx((1000 - 200) / 999, rel=0.02))


def test_unstable_hyperparameters_raise_before_any_step(data, monkeypatch):
    def no_steps(*args, **kwargs):
        raise AssertionError("an SGD step ran")
    monkeypatch.setattr(torch.optim.SGD, "step", no_steps)
    top = np.linalg.eigvalsh(data.X.T @ data.X / len(data.X)).max()
    s = scenario_for(data, lr=2.2 / top, momentum=0.0, batch=8)          # beyond 2(1+β)/λ_max
    with pytest.raises(ocp.ProblemError, match=r"lr.*2\(1 \+ momentum\)"):
        simulate(s, 100)
    s = scenario_for(data, lr=3.0 / top, momentum=0.9, weight_decay=1.0, batch=8)
    with pytest.raises(ocp.ProblemError, match="weight_decay"):
        s.stability()
    wide = make_regression(12, 500, 0.5, spectrum=np.ones(12), seed=0)   # mean stable, variance not
    s = scenario_for(wide, lr=1.0, momentum=0.0, batch=1)
    with pytest.raises(ocp.ProblemError, match="second moments.*batch"):
        simulate(s, 100)


@pytest.mark.parametrize("call, match", [
    (lambda: make_regression(0, 10, 0.1), "dim"),
    (lambda: make_regression(2.5, 10, 0.1), "dim"),
    (lambda: make_regression(5, 3, 0.1), "samples"),
    (lambda: make_regression(2, 10, -0.1), "noise"),
    (lambda: make_regression(2, 10, float("nan")), "noise"),
    (lambda: make_regression(2, 10, 0.1, spectrum=[1.0, -1.0]), "spectrum"),
    (lambda: SGDLangevinScenario(H=np.eye(2), sigma2=1.0, lr=0.1, batch=0), "batch"),
    (lambda: SGDLangevinScenario(H=np.eye(2), sigma2=1.0, lr=0.0), "lr"),
    (lambda: SGDLangevinScenario(H=np.eye(2), sigma2=1.0, lr=0.1, momentum=1.0), "momentum"),
    (lambda: SGDLangevinScenario(H=np.eye(2), sigma2=-1.0, lr=0.1), "sigma2"),
    (lambda: SGDLangevinScenario(H=np.eye(2), sigma2=1.0, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda: SGDLangevinScenario(H=np.diag([1.0, 0.0]), sigma2=1.0, lr=0.1), "positive definite"),
    (lambda: SGDLangevinScenario(X=np.ones((4, 2)), y=np.ones(3), lr=0.1), "y must"),
])
def test_bad_input(call, match):
    with pytest.raises(ocp.ProblemError, match=match):
        call()


def _cli(argv):
    parser = argparse.ArgumentParser(prog="lossnav")
    langevin_cli.add_parser(parser.add_subparsers(dest="command"))
    return langevin_cli.run(parser.parse_args(argv))


SMALL = ["--dim", "3", "--samples", "500", "--noise", "0.5", "--lr", "0.02", "--momentum", "0.9",
         "--weight-decay", "0.001", "--batch", "16", "--steps", "1500", "--seed", "1", "--chains", "16"]


def test_cli_json(capsys):
    assert _cli(["langevin", *SMALL, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scenario"] == "sgd_langevin"
    speed = report["instantaneous_speed"]
    assert {"predicted", "measured"} <= set(speed) and speed["predicted"] > 0
    for key in ("position", "velocity"):
        var = report["stationary_variance"][key]
        assert len(var["predicted"]) == len(var["measured"]) == 3
    assert {"continuous", "discrete"} <= set(report["mean_trajectory_error"])
    assert np.isfinite(report["diffusion_exponent"]["measured"])


def test_cli_plots(capsys, tmp_path):
    argv = ["langevin", *SMALL, "--plot", str(tmp_path / "figs")]
    argv[argv.index("--steps") + 1] = "300"
    assert _cli(argv) == 0
    assert "speed" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {
        "phase_space.png", "modified_loss.png", "speed_sweep.png"}


def test_cli_unstable_is_one_line_exit_1(capsys):
    argv = ["langevin", *SMALL]
    argv[argv.index("--lr") + 1] = "5"
    assert _cli(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unstable" in err[0] and "lr" in err[0]
    assert _cli(["langevin", *SMALL[:-2], "--chains", "4", "--batch", "0"]) == 1
    assert "batch" in capsys.readouterr().err
