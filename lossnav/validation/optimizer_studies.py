"""Optimizers of App. H–I against the collocation reference, for ``lossnav validate --report``.

BeliefAdam and WeightUncertainty are online rules: at fixed γ they converge (order 1) to
the overdamped flow they discretise, which is the optimal path only as γ → ∞ (the
reference anticipates the stream or the switch over ~1/γ, and the beliefs' inertia is
dropped). So convergence to the reference is checked as Δt → 0 along the overdamped
scaling γ ∝ 1/Δt with the rates fixed (docs/belief_adam.md, docs/weight_uncertainty.md
§5): the error is O(Δt) + O(1/γ) and its observed order must lie in :data:`ORDER_RANGE`.
"""
from __future__ import annotations

import time

ORDER_RANGE = (0.8, 1.2)


def _belief_adam():
    from .belief_adam_study import joint_limit_study
    return joint_limit_study(factors=(2, 4, 8))


def _weight_uncertainty():
    from .weight_uncertainty_study import joint_limit_study
    return joint_limit_study(gammas=(8.0, 16.0, 32.0))


STUDIES = {
    "belief_adam": (_belief_adam, "BeliefAdam vs collocation, γ → sγ, ξ² → sξ², η → sη, Δt = 0.01/s "
                                  "(errors relative to the largest state change)"),
    "weight_uncertainty": (_weight_uncertainty, "WeightUncertainty vs two-phase collocation across a "
                                                "switch, η = γ, Δt = 0.4/γ (absolute errors)"),
}


def run(selected, progress=None) -> list:
    """One entry per selected scenario with a study: name, caption, rows, passed, message, seconds."""
    out = []
    for name in selected:
        if name not in STUDIES:
            continue
        study, caption = STUDIES[name]
        if progress:
            progress(f"optimizer study {name}: {caption}")
        start = time.perf_counter()
        entry = {"name": name, "caption": caption, "rows": [], "passed": False, "message": ""}
        try:
            entry["rows"] = study()
            orders = [row["order_vs_collocation"] for row in entry["rows"][1:]]
        except Exception as exc:   # any failure is this study's FAIL; the report is still written
            entry["message"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            low, high = ORDER_RANGE
            entry["passed"] = bool(orders) and all(low <= order <= high for order in orders)
            if not entry["passed"]:
                entry["message"] = (f"orders {[round(o, 2) for o in orders]} outside {ORDER_RANGE}" if orders
                                    else "fewer than two rows: no order")
        entry["seconds"] = time.perf_counter() - start
        out.append(entry)
    return out


def summary(entry) -> str:
    """One line: the errors, the orders and the verdict."""
    rows = entry["rows"]
    errors = ", ".join(f"{row['vs_collocation']:.2e}" for row in rows)
    orders = ", ".join(f"{row['order_vs_collocation']:.2f}" for row in rows[1:])
    verdict = "pass" if entry["passed"] else f"FAIL: {entry['message']}"
    return (f"{entry['name']:<19} optimizer → collocation: errors {errors or '—'}; "
            f"orders {orders or '—'}  {verdict}")


def markdown(studies) -> list:
    """The report's section (empty without studies)."""
    if not studies:
        return []
    lines = ["## Optimizers against collocation (App. H–I)", "",
             "Online rules converge to the optimal path as Δt → 0 along the overdamped scaling "
             f"γ ∝ 1/Δt (rates fixed): error O(Δt) + O(1/γ), observed order in {ORDER_RANGE}.", ""]
    for entry in studies:
        lines += [f"### {entry['name']}: {'pass' if entry['passed'] else 'FAIL ' + entry['message']}", "",
                  entry["caption"] + f" ({entry['seconds']:.1f} s).", "",
                  "| γ | Δt | rule vs collocation | order | flow vs collocation | rule vs flow "
                  "| EL (reference) |",
                  "|---|---|---|---|---|---|---|"]
        for row in entry["rows"]:
            order = f"{row['order_vs_collocation']:.2f}" if "order_vs_collocation" in row else "—"
            lines.append(f"| {row['gamma']:g} | {row['dt']:.4g} | {row['vs_collocation']:.3e} | {order} | "
                         f"{row['flow_vs_collocation']:.3e} | {row['vs_flow']:.3e} | {row['el_error']:.1e} |")
        lines.append("")
    return lines
