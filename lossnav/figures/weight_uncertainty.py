"""The weight-uncertainty figure (App. I.3–I.4): rest variance β/(kH) and the variance jump
after a switch to a flatter basin, from the collocation reference.

    python -m lossnav.figures.weight_uncertainty OUT_DIR     # OUT_DIR/weight_uncertainty.{png,pdf}

Panels: (a) v_i(t) across a switch to a basin 8× flatter with the same minimum, optimal
path (two-phase collocation: the switch is not announced), the optimal path when it is
known in advance (anticipated_switch) and the WeightUncertainty optimizer; (b) μ_i(t) for a
switch that also moves the minimum; (c) rest variance of collocation against β/(kH)
(Eq. 149); (d) a switch of g alone (same H): the μ̇² term of the EL equation raises v
transiently, which the overdamped limit (and the optimizer) cannot show. Everything is
computed here; :func:`figure_data` returns the numbers quoted in docs/weight_uncertainty.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import ocp
from lossnav.validation.weight_uncertainty_study import run_on_scenario
from ocp.results.files import atomic_savefig
from problems.task_switch import solve_switch
from problems.weight_uncertainty import WeightUncertaintyScenario, anticipated_switch

SWITCH = dict(H=[4.0, 2.0], g=[-2.0, 1.0], t_switch=5.0, gamma=1.0, eta=1.0, k=1.0)
FLATTER = dict(H_after=[0.5, 0.25], g_after=[-0.25, 0.125])     # same minimum μ* = (0.5, −0.5)
MOVED = dict(H_after=[0.5, 0.25])                               # g kept: μ* moves to (4, −4)
G_ONLY = dict(g_after=[2.0, -1.0])                              # same H: μ* moves to (−0.5, 0.5)
END = 25.0
DT = 0.05


def _switch_case(extra, theta_rest=True):
    scenario = WeightUncertaintyScenario(**SWITCH, **extra)
    theta0 = scenario.rest_point() if theta_rest else scenario.theta0
    solution = solve_switch(scenario, theta0=theta0, until=END)
    return scenario, theta0, solution


def _optimizer_path(scenario, theta0):
    return run_on_scenario(scenario, DT, int(round(END / DT)), theta0=theta0)


def figure_data() -> dict:
    """All curves and the summary numbers of the figure."""
    t = np.linspace(0.0, END, 601)
    data = {"t": t}
    for key, extra in (("flatter", FLATTER), ("moved", MOVED), ("g_only", G_ONLY)):
        scenario, theta0, solution = _switch_case(extra)
        grid, rule = _optimizer_path(scenario, theta0)
        data[key] = {"scenario": scenario, "path": solution(t), "el": solution.el_error(),
                     "rule_t": grid, "rule": rule, "rest_before": scenario.rest_point(),
                     "rest_after": scenario.rest_point(after=True)}
    scenario = data["flatter"]["scenario"]
    knowing = anticipated_switch(scenario, theta0=scenario.rest_point(), until=END)
    data["flatter"]["anticipated"] = knowing(t)
    data["flatter"]["objectives"] = (knowing.objective, solve_switch(scenario, theta0=scenario.rest_point(),
                                                                      until=END).objective)
    # (c) rest variance against β/(kH): stationary solves at γ = 0 from v = 1
    rows = []
    for beta in (0.5, 1.0, 2.0):
        for H in np.geomspace(0.2, 5.0, 6):
            scenario = WeightUncertaintyScenario(H=[H], g=[0.3], beta=beta, gamma=0.0, k=1.5)
            path = ocp.solve(scenario.problem, scenario.theta0)
            rows.append((beta, H, path.theta[-1, 1], beta / (1.5 * H)))
    data["rest"] = np.array(rows)
    n = 2
    flatter = data["flatter"]
    after = t > SWITCH["t_switch"]
    v = flatter["path"][:, n:]
    data["summary"] = {
        "rest_relative_error": float(np.max(np.abs(data["rest"][:, 2] / data["rest"][:, 3] - 1))),
        "flatter_v_before": flatter["path"][np.searchsorted(t, SWITCH["t_switch"]), n:].tolist(),
        "flatter_v_end": v[-1].tolist(), "flatter_v_target": flatter["rest_after"][n:].tolist(),
        "flatter_v_monotone_after": bool(np.all(np.diff(v[after], axis=0) >= -1e-9)),
        "anticipated_v_at_switch":
            data["flatter"]["anticipated"][np.searchsorted(t, SWITCH["t_switch"]), n:].tolist(),
        "objective_anticipated_vs_replanning": list(data["flatter"]["objectives"]),
        "g_only_peak_ratio": (data["g_only"]["path"][:, n:].max(axis=0)
                              / data["g_only"]["rest_after"][n:]).tolist(),
        "el_errors": {key: data[key]["el"] for key in ("flatter", "moved", "g_only")},
    }
    return data


def plot(out_dir) -> dict:
    """Write OUT_DIR/weight_uncertainty.png and .pdf; return the summary numbers."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = figure_data()
    t, n, t_s = data["t"], 2, SWITCH["t_switch"]
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    colors = ("C0", "C1")
    (a, b), (c, d) = axes
    panels = (("flatter", a, "v", "v_i"), ("moved", b, "mu", "μ_i"), ("g_only", d, "v", "v_i"))
    for key, axis, part, label in panels:
        entry = data[key]
        offset = n if part == "v" else 0
        for i in range(n):
            axis.plot(t, entry["path"][:, offset + i], color=colors[i],
                      label=f"{label}, optimal (collocation)" if i == 0 else None)
            axis.plot(entry["rule_t"], entry["rule"][:, offset + i], "--", color=colors[i],
                      label=f"WeightUncertainty optimizer, Δt={DT}" if i == 0 else None)
            for rest in (entry["rest_before"][offset + i], entry["rest_after"][offset + i]):
                axis.axhline(rest, color=colors[i], lw=0.6, ls=":")
        if key == "flatter":
            for i in range(n):
                axis.plot(t, entry["anticipated"][:, offset + i], "-.", color=colors[i], lw=0.9,
                          label="optimal if the switch is known in advance" if i == 0 else None)
        axis.axvline(t_s, color="k", lw=0.8)
        axis.set_xlabel("t")
    a.set_yscale("log")
    a.set_yticks([0.25, 0.5, 1.0, 2.0, 4.0])
    a.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    a.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set_title("(a) switch to an 8× flatter basin (same minimum): variance jump", fontsize=9)
    a.set_ylabel("v_i (dotted: β/(kH) before and after)")
    b.set_title("(b) flatter basin, minimum moved: larger v = larger step", fontsize=9)
    b.set_ylabel("μ_i (dotted: minima)")
    d.set_title("(d) g switches, H unchanged: transient rise of v (μ̇² term)", fontsize=9)
    d.set_ylabel("v_i")
    rest = data["rest"]
    for beta, marker in zip((0.5, 1.0, 2.0), ("o", "s", "^"), strict=True):
        rows = rest[rest[:, 0] == beta]
        c.loglog(rows[:, 3], rows[:, 2], marker, label=f"β = {beta:g}")
    line = np.array([rest[:, 3].min(), rest[:, 3].max()])
    c.loglog(line, line, "k-", lw=0.8, label="v = β/(kH)  (Eq. 149, β = 1)")
    c.set_xlabel("β/(kH)")
    c.set_ylabel("rest variance, collocation (γ = 0)")
    c.set_title("(c) rest variance", fontsize=9)
    for axis in axes.ravel():
        axis.legend(fontsize=7, loc="best")
    figure.suptitle(f"weight_uncertainty: H = {SWITCH['H']}, γ = η = k = 1, switch at t = {t_s:g}",
                    fontsize=10)
    figure.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        for suffix in ("png", "pdf"):
            atomic_savefig(figure, out / f"weight_uncertainty.{suffix}", dpi=130)
    finally:
        plt.close(figure)
    return data["summary"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lossnav.figures.weight_uncertainty OUT_DIR", file=sys.stderr)
        return 2
    summary = plot(argv[0])
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
