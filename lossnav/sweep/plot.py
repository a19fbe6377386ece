"""The summary plot of a sweep: one figure of the table against one parameter.

Rows with status ok only. The other parameters split the rows into lines (one line per
combination), except ``seed``, over which each line shows the mean with a band from the
smallest to the largest value: the spread over seeds is what a reader wants to see. A
parameter that is not numeric (``rule=sgd,adam``) gives categories on the x axis. An axis
whose positive values span more than two decades is logarithmic.
"""
from __future__ import annotations

import os
import re

from ocp.results.files import atomic_savefig


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
    rows[figure] = pd.to_numeric(rows[figure], errors="coerce")
    position = pd.to_numeric(rows[against], errors="coerce")
    categories = None
    if position.isna().all() and not rows.empty:     # a parameter such as rule=sgd,adam: categories
        categories = list(dict.fromkeys(rows[against]))
        position = rows[against].map({value: index for index, value in enumerate(categories)})
    rows["_x"] = position
    rows = rows.dropna(subset=[figure, "_x"])
    if rows.empty:
        raise PlotError(f"--plot: no finished row has a number for {figure!r} and a value of {against!r}")
    parameters = [c for c in table.attrs.get("parameters", []) if c not in (against, "seed")]
    groups = rows.groupby(parameters, dropna=False) if parameters else [((), rows)]
    axes_figure, axis = plt.subplots(figsize=(6, 4))
    for label, group in groups:
        statistics = group.groupby("_x")[figure].agg(["mean", "min", "max"]).sort_index()
        name = ", ".join(f"{key}={value}" for key, value in zip(parameters, label if isinstance(label, tuple) else (label,)))
        axis.plot(statistics.index, statistics["mean"], marker="o", linestyle="-" if categories is None else "none",
                  label=name or figure)
        if (statistics["max"] > statistics["min"]).any():
            if categories is None:
                axis.fill_between(statistics.index, statistics["min"], statistics["max"], alpha=0.2)
            else:
                axis.vlines(statistics.index, statistics["min"], statistics["max"], alpha=0.5)
    if categories is not None:
        axis.set_xticks(range(len(categories)), [str(c) for c in categories])
        axis.set_xlim(-0.5, len(categories) - 0.5)
    for values, scale in ((rows["_x"] if categories is None else pd.Series([], dtype=float), axis.set_xscale),
                          (rows[figure], axis.set_yscale)):
        positive = values[values > 0]
        if len(values) and len(positive) == len(values) and positive.max() > 100 * positive.min():
            scale("log")
    axis.set_xlabel(against)
    axis.set_ylabel(figure + (" (mean, min–max over seeds)" if "seed" in table.attrs.get("parameters", []) else ""))
    if title:
        axis.set_title(title, fontsize=9)
    if parameters:
        axis.legend(fontsize=7, loc="best")
    axes_figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        atomic_savefig(axes_figure, path, dpi=120)
    finally:
        plt.close(axes_figure)
    return path


def plot_name(figure: str, against: str) -> str:
    def safe(text):
        return re.sub(r"[^\w.-]+", "_", text)
    return f"{safe(figure)}_vs_{safe(against)}.png"

