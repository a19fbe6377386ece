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


def _fmt(value, spec=".1e") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "round-off"   # an exact rule: errors at round-off at every Δt, no order to observe
    return format(value, spec)
