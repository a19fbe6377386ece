"""lossnav problems / solve --method / validate: the catalogue, the methods, and that the
validation detects a wrong closed form."""
import json

import numpy as np
import pytest

import ocp
import problems
from lossnav import cli, report
from lossnav.validation import cases as validate
from problems.quadratic import QuadraticScenario


def run(args, capsys):
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def test_problems_lists_every_scenario_with_ranges(capsys):
    code, out, _ = run(["problems", "--json"], capsys)
    assert code == 0
    catalogue = {entry["name"]: entry for entry in json.loads(out)}
    assert set(catalogue) == set(problems.names()) >= {
        "quadratic", "double_well", "double_well_2d", "natural_gradient", "rotation", "weight_decay"}
    for entry in catalogue.values():
        assert entry["reference"] and entry["parameters"]
        assert all(info["range"] for info in entry["parameters"].values()), entry["name"]


def test_solve_analytic_writes_the_engine_format_and_matches_collocation(tmp_path, capsys):
    settings = ["--set", "H=[[2,1],[1,3]]", "--set", "gamma=0.5"]
    code, _, err = run(["solve", "quadratic", "--method", "analytic", *settings,
                        "--out", str(tmp_path / "a.npz")], capsys)
    assert code == 0, err
    analytic = ocp.Trajectory.load(tmp_path / "a.npz")
    assert run(["solve", "quadratic", *settings, "--out", str(tmp_path / "c.npz")], capsys)[0] == 0
    collocation = ocp.Trajectory.load(tmp_path / "c.npz")
    with np.load(tmp_path / "a.npz") as data:
        assert {"t", "theta", "velocity", "kinetic", "potential", "costate", "objective"} <= set(data)
    inside = collocation.t <= analytic.t[-1]
    assert np.abs(analytic(collocation.t[inside]) - collocation.theta[inside]).max() < 1e-7
    assert abs(analytic.objective - collocation.objective) < 1e-9 * abs(collocation.objective)


def test_solve_with_a_rule_follows_the_analytic_path(capsys):
    code, out, err = run(["solve", "quadratic", "--method", "rule:optimal_quadratic", "--dt", "0.3",
                          "--steps", "10", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    scenario = problems.get("quadratic")
    assert np.allclose(summary["theta_final"], scenario.analytic(3.0), rtol=0, atol=1e-12)


def test_solve_mpc_closed_loop_approaches_the_optimum(capsys):
    code, out, err = run(["solve", "quadratic", "--method", "mpc", "--dt", "0.25", "--steps", "8",
                          "--plan-horizon", "8", "--json"], capsys)
    assert code == 0, err
    final = np.array(json.loads(out)["theta_final"])
    assert np.abs(final - problems.get("quadratic").analytic(2.0)).max() < 1e-5


def test_solve_mpc_on_the_double_well_reaches_the_global_minimum(capsys):
    code, out, err = run(["solve", "double_well_2d", "--method", "mpc", "--dt", "0.5", "--steps", "12",
                          "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["theta_final"][0] > 1.0   # the right (global) well, not θ1 ≈ −0.93


@pytest.mark.parametrize("args, code, words", [
    (["solve", "quadratic", "--method", "mpc"], 2, ["--dt"]),
    (["solve", "quadratic", "--method", "mpc", "--dt", "2", "--plan-horizon", "1"], 1, ["plan_horizon"]),
    (["solve", "quadratic", "--method", "rule:nope", "--dt", "0.1"], 1, ["optimal_quadratic"]),
    (["solve", "quadratic", "--method", "rule:ballistic"], 2, ["--dt"]),
    (["solve", "quadratic", "--method", "magic"], 2, ["collocation", "analytic"]),
    (["solve", "double_well_2d", "--method", "analytic"], 1, ["no analytic solution"]),
    (["solve", "quadratic", "--method", "analytic", "--horizon", "3"], 1, ["infinite horizon"]),
    (["solve", "quadratic", "--method", "rule:gradient_descent", "--dt", "0.1", "--set", "gamma=0"], 1,
     ["gamma"]),
    (["validate"], 2, ["--all"]),
    (["validate", "quadratic", "--all"], 2, ["--all"]),
    (["validate", "cubic"], 1, ["quadratic", "rotation"]),
    (["validate", "quadratic", "--draws", "-1"], 2, ["integer"]),
])
def test_bad_input_is_one_line_and_exit_code(args, code, words, capsys):
    got, _, err = run(args, capsys)
    assert got == code and len(err) == 1, err
    assert all(word in err[0] for word in words), err[0]


def test_validate_quadratic_passes_with_rules(capsys):
    code, out, err = run(["validate", "quadratic", "--draws", "0", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [row["params"]["gamma"] for row in rows] == [0.0, 0.1, 1.0, 10.0]
    for row in rows:
        assert row["passed"] and row["error"] <= validate.TOLERANCE
        rules = {rule["rule"]: rule for rule in row["rules"]}
        assert rules["optimal_quadratic"]["vs_analytic"] <= 1e-10
        if row["params"]["gamma"] > 0:
            assert 0.8 <= rules["gradient_descent"]["order"] <= 1.3


def test_validation_catches_a_wrong_closed_form(monkeypatch):
    """The check must be able to fail: replace the closed form by gradient flow's."""
    def gradient_flow(self, t, theta0=None):
        H = np.array(self.params["H"])
        scale = self.params["eta"] * self.params["k"] / max(self.params["gamma"], 1.0)
        times = np.atleast_1d(t)
        values, vectors = np.linalg.eigh(H)
        out = np.array([vectors @ (np.exp(-scale * values * s) * (vectors.T @ theta0)) for s in times])
        return out[0] if np.ndim(t) == 0 else out
    monkeypatch.setattr(QuadraticScenario, "analytic", gradient_flow)
    case = validate.Case("quadratic", {"gamma": 1.0}, np.array([1.0, 1.0]), "wrong formula")
    result = validate.check(case, rules=False)
    assert not result.passed and "error" in result.message and "el_analytic" in result.message


def test_cases_are_seeded_and_draw_from_the_ranges():
    first = validate.cases("natural_gradient", 2, seed=3)
    again = validate.cases("natural_gradient", 2, seed=3)
    assert [c.params for c in first] == [c.params for c in again]
    assert len(first) == 3 * len(problems.get("natural_gradient").validation_gammas)
    assert first[4].params != first[8].params


def test_report_writes_markdown_with_every_figure(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    def tiny(stem):
        figure = plt.figure()
        return report.figures.save(figure, stem)
    monkeypatch.setattr(report.figures, "FIGURES", {"fig1": (tiny, "one"), "fig2": (tiny, "two")})
    case = validate.Case("quadratic", {"gamma": 1.0}, np.array([1.0, 1.0]), "defaults")
    path = report.write(tmp_path, [validate.check(case, rules=False)])
    text = open(path, encoding="utf-8").read()
    assert "1/1 cases passed" in text and "![one](fig1.png)" in text
    assert (tmp_path / "fig2.pdf").exists() and (tmp_path / "fig1.png").exists()


def test_scenario_extra_checks_run_and_can_fail(monkeypatch):
    """weight_uncertainty's own claim (variance jump to β/(kH/8) after a switch to a flatter
    basin) is checked per case; a failing extra check fails the case with its name."""
    case = validate.cases("weight_uncertainty", draws=0, seed=0)[0]
    result = validate.check(case, rules=False)
    assert result.passed, result.message
    assert result.figures["switch_rest_variance"] <= 1e-3
    assert result.figures["switch_v_decrease"] <= 1e-7
    from problems.weight_uncertainty import WeightUncertaintyScenario
    monkeypatch.setattr(WeightUncertaintyScenario, "extra_checks",
                        lambda self, theta0, trajectory: {"claim": (0.2, 0.1)})
    result = validate.check(case, rules=False)
    assert not result.passed and "claim" in result.message


def _fake_study(orders):
    rows = [{"gamma": 10.0 * 2 ** i, "dt": 0.01 / 2 ** i, "vs_collocation": 0.1 / 2 ** i,
             "flow_vs_collocation": 0.1 / 2 ** i, "vs_flow": 0.01 / 2 ** i, "el_error": 1e-7}
            for i in range(len(orders) + 1)]
    for row, order in zip(rows[1:], orders, strict=True):
        row["order_vs_collocation"] = order
    return lambda: rows


def test_optimizer_studies_judge_the_order_and_reach_report_and_exit_code(tmp_path, monkeypatch, capsys):
    """``validate --report`` runs the optimizer studies of the selected scenarios; an order
    outside ORDER_RANGE, any exception or a single row (no order) fails the study, the report
    is still written and says so, the exit is 1."""
    from lossnav.figures import paper as figures
    from lossnav.validation import optimizer_studies
    monkeypatch.setattr(figures, "FIGURES", {})
    monkeypatch.setattr(validate, "validate", lambda *a, **k: [])
    monkeypatch.setattr(optimizer_studies, "STUDIES", {"quadratic": (_fake_study([0.97, 1.01]), "good")})
    code, out, _ = run(["validate", "quadratic", "--report", str(tmp_path)], capsys)
    assert code == 0 and "orders 0.97, 1.01  pass" in out
    assert "### quadratic: pass" in (tmp_path / "report.md").read_text(encoding="utf-8")

    def unsolved():
        raise ocp.SolveError("a receding window of the reference did not converge", "mesh", 1)
    def broken():
        raise ValueError("the comparison grid must consist of step times of every run")
    for study in (_fake_study([0.97, 0.5]), unsolved, broken, _fake_study([])):
        monkeypatch.setattr(optimizer_studies, "STUDIES", {"quadratic": (study, "bad")})
        code, out, _ = run(["validate", "quadratic", "--report", str(tmp_path)], capsys)
        assert code == 1 and "optimizer → collocation" in out and "FAIL" in out, out
        assert "### quadratic: FAIL" in (tmp_path / "report.md").read_text(encoding="utf-8")
    # scenarios without a study run none
    assert optimizer_studies.run(["rotation"]) == []


def test_a_rule_that_diverges_is_a_row_not_a_crash():
    """First-order rules on the double well at γ = 0.1 take steps ηkΔt/γ too large for the
    well: the run leaves the finite numbers. validate records it (rule, step, reason; error
    inf), reports it without a criterion on this non-quadratic landscape, and goes on."""
    case = next(case for case in validate.cases("double_well", draws=0) if case.params["gamma"] == 0.1)
    result = validate.check(case)
    rows = {row["rule"]: row for row in result.rules}
    diverged = rows["gradient_descent"]
    assert "gradient_descent diverged at step" in diverged["diverged"]
    assert diverged["vs_collocation"] == float("inf") and diverged["passed"] is None
    assert "diverged" not in rows["optimal_quadratic"]
    assert np.isfinite(rows["optimal_quadratic"]["vs_collocation"])
    assert result.passed
