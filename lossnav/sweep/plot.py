"""The summary plot of a sweep: one figure of the table against one parameter.

Rows with status ok only. The other parameters split the rows into lines (one line per
combination), except ``seed``, over which each line shows the mean with a band from the
smallest to the largest value: the spread over seeds is what a reader wants to see. An axis
whose positive values span more than two decades is logarithmic.
"""
from __future__ import annotations

import os
import re


class PlotError(ValueError):
    """The chosen figure or parameter is not a numeric column of the table."""


def summary_plot(table, figure: str, against: str, path: str, title: str = "") -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    for name, role in ((figure, "figure"), (against, "parameter")):
        if name not in table.columns:
            raise PlotError(f"--plot: no column {name!r} ({role}); columns: {', '.join(map(str, table.columns))}")
    rows = table[table["status"] == "ok"].copy()
    for name in (figure, against):
        rows[name] = pd.to_numeric(rows[name], errors="coerce")
    rows = rows.dropna(subset=[figure, against])
    if rows.empty:
        raise PlotError(f"--plot: no finished row has numbers for both {figure!r} and {against!r}")
    parameters = [c for c in table.attrs.get("parameters", []) if c not in (against, "seed")]
    groups = rows.groupby(parameters, dropna=False) if parameters else [((), rows)]
    axes_figure, axis = plt.subplots(figsize=(6, 4))
    for label, group in groups:
        statistics = group.groupby(against)[figure].agg(["mean", "min", "max"]).sort_index()
        name = ", ".join(f"{key}={value}" for key, value in zip(parameters, label if isinstance(label, tuple) else (label,)))
        axis.plot(statistics.index, statistics["mean"], marker="o", label=name or figure)
        if (statistics["max"] > statistics["min"]).any():
            axis.fill_between(statistics.index, statistics["min"], statistics["max"], alpha=0.2)
    for values, scale in ((rows[against], axis.set_xscale), (rows[figure], axis.set_yscale)):
        positive = values[values > 0]
        if len(positive) == len(values) and positive.max() > 100 * positive.min():
            scale("log")
    axis.set_xlabel(against)
    axis.set_ylabel(figure + (" (mean, min–max over seeds)" if "seed" in table.attrs.get("parameters", []) else ""))
    if title:
        axis.set_title(title, fontsize=9)
    if parameters:
        axis.legend(fontsize=7, loc="best")
    axes_figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp.png"
    try:
        axes_figure.savefig(temporary, dpi=120)
        os.replace(temporary, path)
    finally:
        plt.close(axes_figure)
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def plot_name(figure: str, against: str) -> str:
    def safe(text):
        return re.sub(r"[^\w.-]+", "_", text)
    return f"{safe(figure)}_vs_{safe(against)}.png"

