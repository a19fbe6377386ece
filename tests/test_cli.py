"""The lossnav command line, called in-process: lossnav.cli.main(argv) → exit code."""
import json

import numpy as np
import pytest

import ocp
from lossnav import cli

FAST = ["--horizon", "2", "--intervals", "10", "--degree", "3"]


def run(args):
    try:
        return cli.main(args)
    except SystemExit as exc:  # main should return codes, but never let a test hang on it
        return exc.code


def error_lines(capsys):
    captured = capsys.readouterr()
    return [line for line in captured.err.splitlines() if line.strip()], captured.out


def test_solve_quadratic_json_and_out(tmp_path, capsys):
    out = tmp_path / "q.npz"
    code = run(["solve", "quadratic", "--set", "H=[[2, 0.5], [0.5, 1]]", "--set", "mu=[1, -1]",
                "--theta0", "0.5,2", *FAST, "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["problem"] == "quadratic"
    assert summary["theta0"] == pytest.approx([0.5, 2.0])
    assert summary["success"] is True
    with np.load(out) as data:
        assert {"t", "theta", "velocity", "kinetic", "potential", "costate", "objective"} <= set(data.files)
        assert data["theta"][0] == pytest.approx([0.5, 2.0], abs=1e-12)
        assert data["t"][0] == 0.0 and data["t"][-1] == pytest.approx(2.0)
        assert float(data["objective"]) == pytest.approx(summary["objective"])


def test_negative_theta0_is_not_taken_for_an_option(capsys):
    code = run(["solve", "quadratic", "--set", "H=3", "--theta0", "-2", *FAST, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["theta0"] == [-2.0]


def test_plot_writes_png(tmp_path, capsys):
    png = tmp_path / "fig.png"
    assert run(["solve", "double_well_2d", "--terminal", "1.0625,0", *FAST, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("setting", ["H=[1,", "H", "=3", "gamma=abc"])
def test_malformed_set_exits_2_with_one_line(setting, capsys):
    assert run(["solve", "quadratic", "--set", setting]) == 2
    lines, out = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("lossnav: error:")
    assert out == ""


def test_unknown_problem_lists_valid_names(capsys):
    assert run(["solve", "no_such_problem"]) != 0
    lines, _ = error_lines(capsys)
    assert len(lines) == 1
    assert "no_such_problem" in lines[0] and "quadratic" in lines[0] and "double_well_2d" in lines[0]


def test_unknown_parameter_lists_valid_names(capsys):
    assert run(["solve", "double_well_2d", "--set", "z=1"]) != 0
    lines, _ = error_lines(capsys)
    assert len(lines) == 1
    assert "'z'" in lines[0] and all(name in lines[0] for name in ("a", "gamma", "eta", "k"))


def test_negative_gamma_is_a_clear_error(capsys):
    assert run(["solve", "quadratic", "--set", "gamma=-1", *FAST]) == 1
    lines, _ = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("lossnav: error:") and "gamma" in lines[0]


@pytest.mark.parametrize("args", [["--theta0", "1,2,3"], ["--terminal", "1,0", "--horizon", "inf"],
                                  ["--set", "H=[[1, 2]]"], ["--set", "H=[1, -1]"]])
def test_bad_input_exits_1_with_one_line(args, capsys):
    assert run(["solve", "quadratic", "--intervals", "10", "--degree", "3", *args]) == 1
    lines, _ = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("lossnav: error:")


def test_bad_mesh_exits_2(capsys):
    assert run(["solve", "quadratic", "--degree", "13"]) == 2
    lines, _ = error_lines(capsys)
    assert len(lines) == 1 and "degree" in lines[0]


def test_solve_t0_starts_the_clock_of_a_time_dependent_scenario(tmp_path, capsys):
    """Principle of optimality on belief_adam's stream: the tail on [1, 2] of the optimal path
    on [0, 2] is the path from x(1) with the clock at 1 (same element grid, so the discrete
    tail problem is the same NLP); with the clock at 0 it follows another stream."""
    import problems
    scenario = problems.get("belief_adam")
    whole = ocp.solve(scenario.problem, scenario.theta0, horizon=2.0, mesh=ocp.Mesh(40, 5))
    middle = ",".join(repr(float(x)) for x in whole(1.0))
    tails = {}
    for t0 in ("1", "0"):
        out = tmp_path / f"tail{t0}.npz"
        code = run(["solve", "belief_adam", "--theta0", middle, "--horizon", "1", "--intervals", "20",
                    "--t0", t0, "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        with np.load(out) as data:
            tails[t0] = (data["t"], data["theta"])
    t, theta = tails["1"]
    assert t[0] == 1.0 and t[-1] == pytest.approx(2.0)
    assert np.abs(theta - whole(t)).max() <= 1e-7
    t, theta = tails["0"]
    assert np.abs(theta - whole(t + 1.0)).max() > 1e-3


@pytest.mark.parametrize("args", [["--t0", "nan"], ["--t0", "soon"],
                                  ["--t0", "1", "--method", "rule:optimal_quadratic", "--dt", "0.1"],
                                  ["--t0", "1", "--method", "analytic"]])
def test_solve_refuses_a_bad_or_inapplicable_t0(args, capsys):
    code = run(["solve", "quadratic", *args])
    err, _ = error_lines(capsys)
    assert code == 2 and len(err) == 1 and "t0" in err[0], err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "fine"])
def test_bad_mesh_tol_exits_2_with_one_line(value, capsys):
    assert run(["solve", "quadratic", "--horizon", "10", "--mesh-tol", value]) == 2
    lines, out = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("lossnav: error:") and "--mesh-tol" in lines[0]
    assert out == ""


def test_mesh_tol_refines_and_reports_it(capsys):
    assert run(["solve", "quadratic", "--horizon", "6", "--mesh-tol", "1e-12", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["mesh_refinement"]
    assert record["tol"] == 1e-12 and record["meshes"][-1]["estimate"] <= 1e-12
