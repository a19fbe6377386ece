"""The engine on problems outside the catalogue (issue 15): the infinite horizon closed by the LQ
tail in few NLPs, every finite horizon right or refused, extreme rates, time budgets, Ctrl-C."""
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import casadi
import numpy as np
import pytest
from conftest import random_spd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocp
import ocp.horizons.current_value_collocation
import ocp.horizons.infinite
from ocp.control.receding import receding_windows
from ocp.nlp.transcription import transcription_for

ROOT = Path(__file__).resolve().parents[1]


def quadratic(H, gamma, eta=1.0, k=1.0, metric=None):
    return ocp.DiscountedOCP(len(H), lambda th, H: 0.5 * th.T @ H @ th, gamma=gamma, eta=eta, k=k,
                             metric=metric, constants={"H": H})


def exact_quadratic(t, theta0, M, gamma, eta=1.0, k=1.0):
    """θ(t) = e^{Rt}θ0, R = γ/2 − (γ²/4 + ηk M)^{1/2}, M = G⁻¹H (App. C.1, F), stably."""
    values, vectors = np.linalg.eig(M)
    curvature = eta * k * values.real
    rates = curvature / (np.sqrt(gamma ** 2 / 4 + curvature) + gamma / 2)
    coefficients = np.linalg.solve(vectors, theta0)
    return (np.exp(-np.outer(t, rates)) * coefficients) @ vectors.T.real


def test_lq_tail_closes_a_quadratic_in_one_nlp():
    H = np.array([[3.0, 1.0], [1.0, 2.0]])
    G = np.array([[2.0, 0.5], [0.5, 1.0]])
    theta0 = np.array([1.0, -2.0])
    path = ocp.solve(quadratic(H, gamma=2.0, metric=G), theta0)
    exact = exact_quadratic(path.t, theta0, np.linalg.solve(G, H), 2.0)
    assert np.abs(path.theta - exact).max() <= 1e-9 * np.abs(theta0).max()
    assert path.stats["nlp_solves"] == {"first_window": 1, "windows": 0, "policy": 0}
    assert path.stats["tail"] == "lq" and path.stats["tail_bound"] <= 1e-8 and path.stats["reached_rest"]


@pytest.mark.parametrize("bridge", [True, False])
def test_nonquadratic_path_matches_receding_windows_with_few_nlps(bridge, monkeypatch):
    """A convex quartic at γ = 2 moves far beyond the first window (the path's rate ≈ 0.3 against
    a kept window of 4.6/γ ≈ 2.3): the current-value bridge (one NLP in all) or, with the bridge
    off, receding windows of the same NLP until the LQ tail's bound holds, then the closed
    form; against an independent reference (finite windows, refined)."""
    def loss(th):
        return 0.5 * casadi.sumsqr(th) + 0.25 * casadi.sum1(th ** 4) + 0.3 * th[0] * th[1]
    if not bridge:
        monkeypatch.setattr(ocp.horizons.current_value_collocation, "NEWTON_STEPS", 0)
    problem = ocp.DiscountedOCP(2, loss, gamma=2.0)
    theta0 = np.array([2.0, -1.5])
    path = ocp.solve(problem, theta0)
    counts = path.stats["nlp_solves"]
    assert path.stats["tail"] == "lq" and counts["policy"] == 0 and path.stats["tail_bound"] <= 1e-8
    if bridge:
        assert counts["windows"] == 0 and path.stats["solves"] == 1
    else:
        assert 1 <= counts["windows"] < ocp.horizons.infinite.MAX_WINDOWS
    span = path.t[np.nonzero(np.abs(path.theta).max(axis=1) >= 1e-5)[0][-1]]
    reference = receding_windows(problem, theta0, span, mesh=ocp.Mesh(60, 6))
    inside = path.t <= span
    assert np.abs(path.theta[inside] - reference(path.t[inside])).max() <= 1e-7 * np.abs(theta0).max()
    assert np.abs(path.theta[-1]).max() <= 1e-6 * np.abs(theta0).max()


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(dim=st.integers(1, 3), gamma=st.floats(0.05, 100.0), log_eta=st.floats(-2, 2), seed=st.integers(0, 99))
def test_random_quadratics_with_metric_are_exact(dim, gamma, log_eta, seed):
    rng = np.random.default_rng(seed)
    H = random_spd(rng, dim, condition=50.0)
    B = rng.normal(size=(dim, dim))
    G = B @ B.T + dim * np.eye(dim)
    theta0 = rng.normal(size=dim) + 0.5
    eta = 10.0 ** log_eta
    path = ocp.solve(quadratic(H, gamma, eta=eta, metric=G), theta0)
    exact = exact_quadratic(path.t, theta0, np.linalg.solve(G, H), gamma, eta=eta)
    assert np.abs(path.theta - exact).max() <= 1e-7 * np.abs(theta0).max()
    assert path.stats["solves"] <= 3


@pytest.mark.parametrize("horizon", [100.0, 1e4, 1e6])
def test_long_finite_horizons_are_the_infinite_path_then_a_final_window(horizon):
    """--horizon 100 used to climb back to θ0 after t ≈ 14 and 1e4 gave objective 2e-20: the
    discount e^{−γt} below round-off hid the tail from the NLP."""
    H, theta0 = np.diag([1.0, 3.0]), np.array([1.0, 1.0])
    problem = quadratic(H, gamma=1.0)
    path = ocp.solve(problem, theta0, horizon=horizon)
    infinite = ocp.solve(problem, theta0)
    assert path.t[-1] == pytest.approx(horizon, rel=1e-15)
    assert path.objective == pytest.approx(infinite.objective, rel=1e-9)
    exact = exact_quadratic(path.t, theta0, H, 1.0)
    assert np.abs(path.theta - exact).max() <= 1e-8
    assert path.stats["long_horizon"]["final_window"] == pytest.approx(-math.log(1e-12))


def test_horizon_beyond_float_resolution_is_refused():
    problem = quadratic(np.eye(2), gamma=1.0)
    with pytest.raises(ocp.ProblemError, match="too long to resolve its end"):
        ocp.solve(problem, [1.0, 1.0], horizon=1e300)


@pytest.mark.parametrize("rate", ["eta", "k"])
def test_tiny_rates_give_the_slow_exact_path(rate):
    """--set k=1e-17 hung in the policy integration; eta=1e-17 divided by zero in the time scale."""
    values = {"eta": 1.0, "k": 1.0, rate: 1e-17}
    H, theta0 = np.diag([1.0, 2.0]), np.array([1.0, -1.0])
    path = ocp.solve(quadratic(H, gamma=1.0, **values), theta0, time_limit=120)
    exact = exact_quadratic(path.t, theta0, H, 1.0, **values)
    assert np.abs(path.theta - exact).max() <= 1e-7 * np.abs(theta0).max()
    assert path.stats["solves"] <= 3 and path.t[-1] > 1e15


def test_time_limit_ends_in_a_solve_error_with_the_best_iterate():
    def loss(th):
        return casadi.sum1((th ** 2 - 1) ** 2 - 0.3 * th)
    problem = ocp.DiscountedOCP(30, loss, gamma=0.5)
    with pytest.raises(ocp.SolveError) as caught:
        ocp.solve(problem, np.full(30, -0.5), mesh=ocp.Mesh(80, 6), time_limit=1e-6)
    assert caught.value.status == "time_limit"
    assert caught.value.last_iterate is None or caught.value.last_iterate.stats["success"] is False
    for bad in (0, -1.0, "soon", float("nan")):
        with pytest.raises(ocp.ProblemError, match="time_limit"):
            ocp.solve(problem, np.zeros(30), time_limit=bad)


def test_sigint_during_a_solve_raises_keyboard_interrupt(monkeypatch):
    """CasADi turns a SIGINT during IPOPT into a failed solve; the engine must re-raise it."""
    problem = quadratic(np.eye(2), gamma=1.0)
    transcription = transcription_for(problem, ocp.Mesh(), True, False)
    original = type(transcription.monitor).eval

    def interrupt_once(self, arg):
        os.kill(os.getpid(), signal.SIGINT)      # as a user's Ctrl-C, in the middle of IPOPT
        return original(self, arg)
    monkeypatch.setattr(type(transcription.monitor), "eval", interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        ocp.solve(problem, [1.0, 1.0])


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_ctrl_c_exits_130_with_one_line_and_no_output(tmp_path):
    """Ctrl-C in the middle of a long run (an MPC loop of 1e8 steps, one NLP each): exit 130,
    one line on stderr, no --out file (it was turned into a failed solve and the run went on)."""
    out = tmp_path / "path.npz"
    script = ("import sys, lossnav.cli; print('ready', flush=True); "
              "sys.exit(lossnav.cli.main(sys.argv[1:]))")
    process = subprocess.Popen([sys.executable, "-c", script, "solve", "quadratic", "--method", "mpc",
                                "--dt", "0.1", "--steps", "100000000", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"     # imported: main is about to run
        try:
            process.wait(timeout=5)      # still running: interrupt it in its solve loop
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:                             # never leave a 1e8-step run behind (a failed or killed test)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_concave_start_is_guessed_downhill_and_reaches_the_held_guess_optimum():
    """From θ0 = 0.1 between the wells of Σ (θ_i² − 1)² + c_i θ_i (locally concave: L'' < 0) the
    default first guess is the rest point downhill from θ0 (ocp.horizons.downhill): the same
    optimum as the θ0-held guess, in fewer IPOPT iterations; a convex start keeps θ0 held."""
    c = np.array([-0.2, 0.1, 0.25])
    problem = ocp.DiscountedOCP(3, lambda th, c: casadi.sum1((th ** 2 - 1) ** 2 + c * th), gamma=0.5,
                                constants={"c": c})
    theta0 = np.full(3, 0.1)
    guessed = ocp.solve(problem, theta0)
    held = ocp.solve(problem, theta0, guess=lambda t: theta0)
    assert guessed.stats["default_guess"] == "downhill" and "default_guess" not in held.stats
    assert guessed.objective == pytest.approx(held.objective, rel=1e-12)
    assert np.abs(guessed.theta[-1] - held.theta[-1]).max() <= 1e-9
    assert guessed.stats["iterations"] < held.stats["iterations"]
    assert "default_guess" not in ocp.solve(problem, np.full(3, 1.2)).stats
