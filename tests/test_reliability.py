"""Issue 19's defects, one test each: no wrong result reported as success, no corrupt file
loaded, no half-written output, no traceback where the command line promises one line.

Each test was run against the code before its fix and failed there (docs/reliability.md)."""
import argparse
import io
import math
import os
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch

import learning_rules
import ocp
import problems
from lossnav import cli
from lossnav.training import Dataset, load_data, loop, make_model, make_optimizer, train
from lossnav.training.loop import TrainingError
from lossnav.validation import rule_runner


def run(argv, capsys):
    """(exit code, stderr lines, stdout) of the CLI called in-process."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:           # main returns codes; never let a test hang on it
        code = exc.code
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out


@pytest.fixture(scope="module")
def tiny():
    data = load_data("digits")
    return Dataset("tiny", data.x_train[:160], data.y_train[:160], data.x_test[:100], data.y_test[:100], 10)


def small_trajectory(scale=1.0):
    t = np.linspace(0.0, 2.0, 5)
    theta = scale * np.column_stack([np.exp(-t), np.exp(-2 * t)])
    return ocp.Trajectory(t=t, theta=theta, velocity=np.gradient(theta, t, axis=0), kinetic=t ** 2,
                          potential=np.exp(-t), costate=-theta, objective=1.25 * scale,
                          elements=np.array([[i, i + 1, 0.0, 0.0] for i in range(4)], float),
                          stats={"success": True, "gamma": 1.0})


# -- 1. a diverging rule is a failure -------------------------------------------------------------
def test_a_diverging_rule_is_a_failure_with_its_step(capsys):
    code, err, out = run(["solve", "quadratic", "--method", "rule:gradient_descent", "--dt", "10",
                          "--steps", "400", "--json"], capsys)
    assert code == 1 and out == ""
    assert len(err) == 1 and "diverged at step" in err[0] and "lower --dt" in err[0], err
    with pytest.raises(rule_runner.DivergenceError, match=r"diverged at step \d+ of 400") as caught:
        rule_runner.run_rule("gradient_descent", problems.get("quadratic"), 10.0, 400)
    assert 1 <= caught.value.step < 400
    # a stable step size still runs to the end
    t, theta = rule_runner.run_rule("gradient_descent", problems.get("quadratic"), 0.1, 50)
    assert np.all(np.isfinite(theta)) and len(t) == 51


def test_a_rule_that_skipped_a_step_is_not_a_trajectory(monkeypatch):
    scenario = problems.get("quadratic")
    original = scenario.torch_loss
    calls = []

    class NaNGradient(torch.autograd.Function):      # a finite loss whose gradient is NaN
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * math.nan

    def loss_with_one_bad_gradient(theta):
        calls.append(1)
        return original(NaNGradient.apply(theta) if len(calls) == 3 else theta)
    monkeypatch.setattr(scenario, "torch_loss", loss_with_one_bad_gradient)
    skipped = r"at step 3 of 10 \(t = 0.3\): the optimizer skipped"
    with pytest.warns(RuntimeWarning, match="skipped"), \
            pytest.raises(rule_runner.DivergenceError, match=skipped):
        rule_runner.run_rule("natural_gradient", scenario, 0.1, 10)


# -- 2. running statistics stay finite after a huge gradient ------------------------------------
def _rules():
    """Every rule of learning_rules that keeps running statistics of the gradient, with settings
    that use them, and no solver (RecedingHorizon's planner is exercised in its own tests)."""
    return {
        "Ballistic": lambda p: learning_rules.Ballistic([p], lr=0.05),
        "Ballistic-paper": lambda p: learning_rules.Ballistic.paper([p], lr=0.05),
        "NaturalGradient-fisher": lambda p: learning_rules.NaturalGradient([p], lr=0.05, metric="fisher"),
        "BeliefAdam": lambda p: learning_rules.BeliefAdam([p], lr=0.005),
        "OptimalQuadratic-hutchinson": lambda p: learning_rules.OptimalQuadratic(
            [p], lr=0.05, gamma=1.0, curvature="hutchinson", curvature_beta=0.9),
        "WeightUncertainty": lambda p: learning_rules.WeightUncertainty([p], lr=0.05),
    }


@pytest.mark.parametrize("name", sorted(_rules()))
def test_one_huge_gradient_does_not_freeze_a_rule(name):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = _rules()[name](p)

    def step(scale):
        def closure():
            optimizer.zero_grad()
            loss = scale * ((p - 0.25) ** 2).sum()
            loss.backward()
            return loss
        optimizer.step(closure)
    step(1e30)                          # finite in float32, its square is not
    with warnings.catch_warnings(record=True) as caught:   # the one step path warns when the count is read
        warnings.simplefilter("always")
        skipped = optimizer.skipped_steps
    assert skipped in (0, 1) and len(caught) == skipped    # skipped, counted and warned once, or absorbed
    if name.startswith(("Ballistic", "NaturalGradient")):  # these square the gradient: always skipped
        assert skipped == 1
    states = [*optimizer.state[p].values(), *optimizer.param_groups[0].get("group_state", {}).values()]
    for value in states:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert torch.isfinite(value).all(), (name, states)
    distance = (p.detach() - 0.25).abs().max()
    for _ in range(50):
        step(1.0)
    assert torch.isfinite(p).all()
    now = (p.detach() - 0.25).abs().max()
    assert now < 0.8 * distance or now < 1e-6, f"{name} froze after the huge gradient ({distance} -> {now})"
    assert optimizer.skipped_steps == skipped       # the later finite steps were all taken


class _no_check:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_ballistic_counts_the_skipped_overflow():
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = learning_rules.Ballistic([p], lr=0.05)
    optimizer.zero_grad()
    (1e30 * (p ** 2).sum()).backward()
    optimizer.step()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert optimizer.skipped_steps == 1
    assert torch.equal(p.detach(), torch.ones(3))
    assert torch.equal(optimizer.state[p]["exp_avg_sq"], torch.zeros(3))


# -- 3. corrupted files are refused ------------------------------------------------------------
def _flip(path, count=200):
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_a_corrupted_checkpoint_is_refused(tiny, tmp_path, capsys):
    checkpoint = tmp_path / "run.pt"
    model = make_model("mlp", tiny, seed=0)
    train(model, make_optimizer("adam", model.parameters()), tiny, 1, seed=0, checkpoint=str(checkpoint),
          progress=False)
    assert loop.load_checkpoint(str(checkpoint))["history"]["epochs"]
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) - 10])           # truncated
    with pytest.raises(TrainingError, match="checksum"):
        loop.load_checkpoint(str(checkpoint))
    checkpoint.write_bytes(data)
    _flip(checkpoint)                                          # 200 bytes flipped in the middle
    model = make_model("mlp", tiny, seed=0)
    with pytest.raises(TrainingError, match="does not match its checksum"):
        train(model, make_optimizer("adam", model.parameters()), tiny, 2, seed=0, resume=str(checkpoint),
              progress=False)
    code, err, _ = run(["train", "--data", "digits", "--model", "mlp", "--rule", "adam", "--epochs", "2",
                        "--seed", "0", "--resume", str(checkpoint)], capsys)
    assert code == 1 and len(err) == 1 and "checksum" in err[0] and str(checkpoint) in err[0], err


def test_a_trajectory_whose_content_changed_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    small_trajectory().save(path)
    with np.load(path) as data:
        contents = {key: data[key] for key in data.files}
    contents["theta"] = contents["theta"] + 1e-3          # a valid zip, a different trajectory
    np.savez(path, **contents)
    with pytest.raises(ocp.FileFormatError, match="does not match its checksum"):
        ocp.Trajectory.load(path)


# -- 4. every write is atomic ------------------------------------------------------------------
def _refuse_rename(monkeypatch):
    def refuse(source, target):
        raise OSError(28, "No space left on device (simulated)", target)
    monkeypatch.setattr(os, "replace", refuse)


def _writers(tmp_path, tiny):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lossnav import report
    from lossnav.cli import solve as solve_cli
    from lossnav.cli import train as train_cli
    from lossnav.figures import paper

    def figure():
        fig, axis = plt.subplots()
        axis.plot([0, 1], [1, 0])
        return fig
    model = make_model("mlp", tiny, seed=0)
    optimizer = make_optimizer("sgd", model.parameters())
    metrics = {"rule": "sgd", "data": "tiny", "model": "mlp", "seed": 0,
               "epochs": [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "test_accuracy": 50.0}]}
    return {
        "trajectory": (tmp_path / "t.npz", lambda path: small_trajectory().save(path)),
        "checkpoint": (tmp_path / "c.pt", lambda path: loop._save(str(path), model, optimizer,
                                                                 torch.Generator(), {"epochs": []}, {})),
        "metrics": (tmp_path / "m" / "metrics.json",
                    lambda path: train_cli.write_outputs(str(path.parent), metrics)),
        "solve plot": (tmp_path / "p.png", lambda path: solve_cli.write_plot(
            argparse.Namespace(plot=str(path), method="collocation"), problems.get("quadratic"), None, None,
            small_trajectory())),
        "trajectory plot": (tmp_path / "q.png", lambda path: small_trajectory().plot(str(path))),
        "paper figure": (tmp_path / "f.png", lambda path: paper.save(figure(), str(path)[:-4])),
        "report": (tmp_path / "r" / "report.md", lambda path: report.write(str(path.parent), [])),
    }


@pytest.mark.parametrize("name", ["trajectory", "checkpoint", "metrics", "solve plot", "trajectory plot",
                                  "paper figure", "report"])
def test_a_failed_write_keeps_the_previous_file(name, tmp_path, tiny, monkeypatch):
    from lossnav.figures import paper
    monkeypatch.setattr(paper, "FIGURES", {})              # the report's figures: not this test
    path, write = _writers(tmp_path, tiny)[name]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"previous complete file")
    _refuse_rename(monkeypatch)
    with pytest.raises((OSError, TrainingError), match="No space left"):
        write(path)
    assert path.read_bytes() == b"previous complete file", f"{name} wrote over its target in place"
    leftovers = [entry for entry in os.listdir(path.parent) if entry.endswith(".tmp")]
    assert not leftovers, leftovers


def test_sigkill_in_the_middle_of_a_save_leaves_the_previous_trajectory(tmp_path):
    """A writer killed (os._exit, like SIGKILL: no cleanup) half-way through its write."""
    path = tmp_path / "t.npz"
    small_trajectory().save(path)
    script = f"""
import os, numpy as np, ocp
from ocp.results import files
real = files.atomic_write
import contextlib
@contextlib.contextmanager
def dying(path, mode="wb", encoding=None):
    with real(path, mode, encoding) as handle:
        class Dying:
            def __init__(self): self.written = 0
            def write(self, data):
                handle.write(data[: len(data) // 2]); handle.flush(); os._exit(9)
            def __getattr__(self, name): return getattr(handle, name)
        yield Dying()
files.atomic_write = dying
t = np.linspace(0, 1, 20001)
theta = np.column_stack([t, t])
ocp.Trajectory(t=t, theta=theta, velocity=theta, kinetic=t, potential=t, costate=theta, objective=2.0,
               elements=np.array([[0, 20000, 0.0, 0.0]]), stats={{}}).save({str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    assert ocp.Trajectory.load(path).objective == 1.25      # the previous file, complete


def test_atomic_write_keeps_the_permissions_of_a_normal_file(tmp_path):
    from ocp.results import files
    with files.atomic_write(tmp_path / "a.txt", "w") as handle:
        handle.write("text")
    open(tmp_path / "b.txt", "w").write("text")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "b.txt").st_mode


# -- 5. Trajectory.load answers in the OCPError family ------------------------------------------
@pytest.mark.parametrize("damage", ["empty", "truncated", "bit-flipped", "not a zip", "missing key"])
def test_a_damaged_trajectory_raises_the_engine_error_naming_the_file(damage, tmp_path):
    path = tmp_path / "x.npz"
    small_trajectory().save(path)
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "bit-flipped":
        _flip(path, 50)
    elif damage == "not a zip":
        path.write_text("hello")
    else:
        with np.load(path) as archive:
            contents = {key: archive[key] for key in archive.files if key != "costate"}
        np.savez(path, **contents)
    with pytest.raises(ocp.FileFormatError, match=str(path).replace("\\", "\\\\")) as caught:
        ocp.Trajectory.load(path)
    assert isinstance(caught.value, ocp.OCPError)
    assert (not isinstance(caught.value.__cause__, (zipfile.BadZipFile, EOFError))
            or caught.value.__suppress_context__)


def test_a_missing_trajectory_is_named():
    with pytest.raises(ocp.FileFormatError, match="nowhere.npz does not exist"):
        ocp.Trajectory.load("nowhere.npz")


# -- 6. one line where the command line promises one line ---------------------------------------
def test_solve_refuses_an_unknown_plot_format_before_solving(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(ocp, "solve", lambda *a, **k: pytest.fail("solved before checking --plot"))
    code, err, _ = run(["solve", "quadratic", "--plot", str(tmp_path / "a.txt")], capsys)
    assert code == 1 and len(err) == 1 and "--plot" in err[0] and ".png" in err[0], err
    assert not (tmp_path / "a.txt").exists()


TRAIN = ["train", "--data", "digits", "--model", "mlp", "--rule", "sgd", "--epochs", "1", "--seed", "0"]


def test_train_checks_the_checkpoint_path_before_any_epoch(capsys, monkeypatch, tmp_path):
    from lossnav import training
    monkeypatch.setattr(training, "train",
                        lambda *a, **k: pytest.fail("trained before checking --checkpoint"))
    code, err, _ = run([*TRAIN, "--checkpoint", str(tmp_path / "missing-dir" / "c.pt")], capsys)
    assert code == 1 and len(err) == 1 and "missing-dir" in err[0] and "does not exist" in err[0], err


def test_train_refuses_a_batch_larger_than_the_data(capsys):
    code, err, _ = run([*TRAIN, "--batch", "100000"], capsys)
    assert code == 2 and len(err) == 1 and "--batch 100000 exceeds the training set" in err[0], err


def test_ctrl_c_in_train_says_where_the_checkpoint_is(capsys, monkeypatch, tmp_path):
    checkpoint = tmp_path / "c.pt"
    evaluations = []
    real = loop.evaluate

    def interrupted_in_epoch_two(*args, **kwargs):
        evaluations.append(1)
        if len(evaluations) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(loop, "evaluate", interrupted_in_epoch_two)
    argv = [*TRAIN[:-4], "--epochs", "3", "--seed", "0", "--checkpoint", str(checkpoint)]
    code, err, _ = run(argv, capsys)
    assert code == 130 and len(err) == 1, err
    assert f"checkpoint {checkpoint} holds epoch 1" in err[0] and "--resume" in err[0]
    assert len(loop.load_checkpoint(str(checkpoint))["history"]["epochs"]) == 1
    assert [entry for entry in os.listdir(tmp_path)] == ["c.pt"]


# -- 7. load_state_dict checks what it loads --------------------------------------------------
def _stepped(optimizer, p):
    def closure():
        optimizer.zero_grad()
        loss = ((p - 0.5) ** 2).sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    return optimizer


def test_load_state_dict_refuses_the_state_of_adam_and_of_another_rule():
    p = torch.nn.Parameter(torch.ones(3))
    ballistic = _stepped(learning_rules.Ballistic([p], lr=0.05), p)
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in ballistic.state[p].items()}
    for other in (torch.optim.Adam([p]), learning_rules.NaturalGradient([p], metric="fisher"),
                  learning_rules.OptimalQuadratic([p], lr=0.1, gamma=1.0)):
        with pytest.raises(ValueError, match="is not a Ballistic group"):
            ballistic.load_state_dict(_stepped(other, p).state_dict())
    assert torch.equal(ballistic.state[p]["exp_avg_sq"], before["exp_avg_sq"])
    _stepped(ballistic, p)                                  # still steps, no KeyError


@pytest.mark.parametrize("key, value, message", [
    ("lr", math.nan, "lr must be a real number"),
    ("gamma", -5.0, "gamma must be a real number in \\[0"),
    ("eta", math.inf, "eta must be a real number"),
    ("lr", "fast", "lr must be a real number"),
])
def test_load_state_dict_checks_hyperparameters_like_the_constructor(key, value, message):
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = _stepped(learning_rules.OptimalQuadratic([p], lr=0.1, gamma=1.0), p)
    state = optimizer.state_dict()
    state["param_groups"][0][key] = value
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(state)
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[0]["gamma"] == 1.0


def test_load_state_dict_checks_the_state_entries():
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = _stepped(learning_rules.Ballistic([p], lr=0.05), p)
    good = optimizer.state_dict()
    for change, message in (
            (lambda s: s["exp_avg_sq"].fill_(math.inf), "'exp_avg_sq' is not finite"),
            (lambda s: s.update(exp_avg_sq=torch.ones(4)), "'exp_avg_sq' has shape \\(4,\\)"),
            (lambda s: s.update(step=torch.tensor(-1.0)), "'step' must be a count"),
    ):
        state = optimizer.state_dict()
        state["state"] = {0: {k: v.clone() if isinstance(v, torch.Tensor) else v
                              for k, v in good["state"][0].items()}}
        change(state["state"][0])
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(state)
    optimizer.load_state_dict(good)                          # a valid state still loads
    assert optimizer.state[p]["exp_avg_sq"].shape == (3,)


# -- 8. the minor ones --------------------------------------------------------------------------
def test_resume_with_fewer_epochs_than_the_checkpoint_is_refused(tiny, tmp_path):
    checkpoint = tmp_path / "c.pt"
    model = make_model("mlp", tiny, seed=0)
    train(model, make_optimizer("sgd", model.parameters()), tiny, 2, checkpoint=str(checkpoint),
          progress=False)
    model = make_model("mlp", tiny, seed=0)
    with pytest.raises(TrainingError, match="already run 2 epochs, more than the 1 asked for"):
        train(model, make_optimizer("sgd", model.parameters()), tiny, 1, resume=str(checkpoint),
              progress=False)


@pytest.mark.parametrize("out, message", [("DIR", "is a folder"),
                                          ("noext", "expected a name ending in .npz")])
def test_solve_out_must_name_an_npz_file(out, message, tmp_path, capsys, monkeypatch):
    (tmp_path / "DIR").mkdir()
    monkeypatch.chdir(tmp_path)
    code, err, _ = run(["solve", "quadratic", "--method", "analytic", "--out", out], capsys)
    assert code == 1 and len(err) == 1 and message in err[0], err
    assert sorted(os.listdir(tmp_path)) == ["DIR"] and os.listdir(tmp_path / "DIR") == []


def test_trajectory_save_writes_exactly_the_name_given(tmp_path):
    small_trajectory().save(tmp_path / "plain")
    assert os.listdir(tmp_path) == ["plain"]
    assert ocp.Trajectory.load(tmp_path / "plain").objective == 1.25


def test_checkpoint_a_folder_names_it_and_leaves_nothing(capsys, tmp_path):
    folder = tmp_path / "DIR"
    folder.mkdir()
    code, err, _ = run([*TRAIN, "--checkpoint", str(folder)], capsys)
    assert code == 1 and len(err) == 1 and f"{folder} is a folder" in err[0] and ".tmp" not in err[0], err
    assert os.listdir(tmp_path) == ["DIR"]


def test_a_closed_pipe_in_process(monkeypatch):
    """``lossnav problems | head -1``: the reader closed the pipe; a quiet end, exit 0 (before:
    "cannot write None: Broken pipe", exit 1). Checked by hand as a real pipe too."""
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    errors = io.StringIO()
    monkeypatch.setattr(sys, "stderr", errors)
    assert cli.main(["problems"]) == 0 and errors.getvalue() == ""


@pytest.mark.parametrize("arguments, message", [((0,), "intervals must be a positive integer"),
                                                 ((4, 0), "degree"), ((4, 3, "gauss"), "scheme")])
def test_mesh_errors_are_in_the_engine_family(arguments, message):
    with pytest.raises(ocp.OCPError, match=message):
        ocp.Mesh(*arguments)


# -- found by tests/test_properties.py ----------------------------------------------------------
def test_validate_checks_the_report_folder_before_any_case(capsys, monkeypatch, tmp_path):
    from lossnav.validation import cases
    monkeypatch.setattr(cases, "validate",
                        lambda *a, **k: pytest.fail("solved cases before checking --report"))
    (tmp_path / "file").write_text("")
    code, err, _ = run(["validate", "quadratic", "--report", str(tmp_path / "file" / "inside")], capsys)
    assert code == 1 and len(err) == 1 and "--report" in err[0], err


def test_out_of_memory_is_one_line(capsys, monkeypatch):
    from lossnav.cli import langevin

    def too_large(*args, **kwargs):
        raise MemoryError("Unable to allocate 64.0 GiB for an array with shape (2147483648, 4)")
    monkeypatch.setattr(langevin, "make_regression", too_large)
    code, err, _ = run(["langevin", "--samples", "2147483648"], capsys)
    assert code == 1 and len(err) == 1 and "out of memory" in err[0] and "64.0 GiB" in err[0], err


@pytest.mark.parametrize("argv", [
    ["solve", "quadratic", "--method", "analytic", "--out", "a\x00.npz"],
    [*TRAIN, "--checkpoint", "c\x00.pt"],
    ["langevin", "--plot", "plots\x00", "--steps", "10"],
    ["validate", "quadratic", "--report", "report\x00"],
])
def test_a_nul_byte_in_an_output_path_is_one_line(argv, capsys, monkeypatch):
    from lossnav.cli import langevin
    monkeypatch.setattr(langevin, "make_regression",
                        lambda *a, **k: pytest.fail("worked before checking --plot"))
    code, err, _ = run(argv, capsys)
    assert code == 1 and len(err) == 1 and "NUL byte" in err[0], err
