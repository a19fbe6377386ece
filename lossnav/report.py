"""The Markdown report of ``lossnav validate --report DIR``: results table and the figures."""
from __future__ import annotations

import datetime
import math
import os

from lossnav.figures import paper as figures
from lossnav.validation import cases as validate
from lossnav.validation import optimizer_studies
from ocp.results.files import write_text


def write(directory, results, progress=None, studies=()) -> str:
    """Write ``directory/report.md`` and every figure (PNG and PDF); return the report's path.
    ``studies``: entries of :func:`lossnav.validation.optimizer_studies.run`, one section."""
    os.makedirs(directory, exist_ok=True)
    lines = [f"# lossnav validation report ({datetime.date.today().isoformat()})", "",
             f"{sum(r.passed for r in results)}/{len(results)} cases passed. Tolerances: "
             f"analytic vs collocation ≤ {validate.TOLERANCE:g} relative to |θ0 − θ*| (until the "
             f"exact path has converged to {validate.CONVERGED:g} of it); Euler–Lagrange residual "
             f"≤ {validate.EL_TOLERANCE:g} (collocation polynomials) and "
             f"{validate.EL_TOLERANCE_ANALYTIC:g} (closed forms) relative to the equation's largest term; "
             f"the path's end within {validate.FINAL_TOLERANCE:g} of a minimum (basin 0 = global).", "",
             "| problem | case | error | EL collocation | EL analytic | final | basin | J | s | result |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        f = result.figures
        cells = [_fmt(f.get(key)) for key in ("error", "el_collocation", "el_analytic", "final_error")]
        lines.append(f"| {result.case.name} | {result.case.label} | {' | '.join(cells)} | "
                     f"{f.get('final_basin', '—')} | {_fmt(f.get('objective'), '.6g')} | "
                     f"{_fmt(f.get('seconds'), '.2f')} | "
                     f"{'pass' if result.passed else 'FAIL: ' + result.message} |")
    lines += ["", "Parameters of each case: `lossnav validate --json`.", ""]
    lines += _rules_table(results)
    lines += optimizer_studies.markdown(studies)
    lines += _network_paths(directory, results, progress)
    lines += ["## Figures", ""]
    for name, (draw, caption) in figures.FIGURES.items():
        if progress:
            progress(f"figure {name}: {caption}")
        draw(os.path.join(directory, name))
        lines += [f"### {caption}", "", f"![{caption}]({name}.png)  ([PDF]({name}.pdf))", ""]
    path = os.path.join(directory, "report.md")
    write_text(path, "\n".join(lines) + "\n")      # atomic: never a half-written report
    return path


def _rules_table(results) -> list:
    """Learning rules per case: error against collocation (and the closed form), order."""
    rows = [(result, rule) for result in results for rule in result.rules]
    if not rows:
        return []
    lines = ["## Learning rules", "",
             "Exact rules must match the closed form to ≤ 1e-10 at every Δt; first-order rules "
             "must converge with order ≈ 1 to their limit flow (Δt, Δt/2, Δt/4); their error "
             "against the optimal path shows where each holds (gradient descent for large γ, "
             "ballistic for γ → 0). '—' : no criterion (non-quadratic landscape).", "",
             "| problem | case | rule | Δt | vs collocation | vs analytic | order | result |",
             "|---|---|---|---|---|---|---|---|"]
    for result, rule in rows:
        verdict = {True: "pass", False: "FAIL", None: "—"}[rule["passed"]]
        if "diverged" in rule:
            verdict += " (diverged)"
        lines.append(f"| {result.case.name} | {result.case.label} | {rule['rule']} | "
                     f"{_fmt(rule['dt'], '.3g')} | {_fmt(rule['vs_collocation'])} | "
                     f"{_fmt(rule.get('vs_analytic'))} | {_fmt(rule.get('order'), '.2f')} | {verdict} |")
    return lines + [""]


def _network_paths(directory, results, progress=None) -> list:
    """Cases that checked optimizers (digits_mlp): each optimizer's distance to the optimal path at
    Δt, Δt/2, Δt/4 and the figure of the paths in the top two principal directions with the loss
    along each (:func:`lossnav.figures.network.path_comparison`)."""
    from lossnav.figures.network import path_comparison
    checked = [result for result in results if result.optimizers]
    if not checked:
        return []
    lines = ["## Optimizers against the optimal path", "",
             "validate_optimizer at Δt, Δt/2, Δt/4 over the rules' window; distances relative to "
             "|θ0 − θ*|; order in Δt of the finest pair ('—': none observable).", "",
             "| problem | case | optimizer | distances | order | verdict |", "|---|---|---|---|---|---|"]
    for result in checked:
        for row in result.optimizers:
            distances = " → ".join(_fmt(error) for error in row["errors"]) or "—"
            lines.append(f"| {result.case.name} | {result.case.label} | {row['optimizer']} | {distances} | "
                         f"{_fmt(row.get('order'), '.2f')} | {row['verdict']} |")
    lines.append("")
    for index, result in enumerate(checked):
        if "optimal" not in result.paths:
            continue
        name = f"paths_{result.case.name}_{index}"
        if progress:
            progress(f"figure {name}: optimal path against the optimizers ({result.case.label})")
        others = {label: value for label, value in result.paths.items() if label != "optimal"}
        loss = result.case.scenario().problem.loss
        path_comparison(os.path.join(directory, name), result.paths["optimal"], others, loss.value,
                        title=f"{result.case.name}, {result.case.label}")
        caption = f"{result.case.name} ({result.case.label}): optimal path and optimizers"
        lines += [f"### {caption}", "", f"![{caption}]({name}.png)  ([PDF]({name}.pdf))", ""]
    return lines


def _fmt(value, spec=".1e") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "round-off"   # an exact rule: errors at round-off at every Δt, no order to observe
    return format(value, spec)
