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

    rows, categories = _plotted_rows(table, figure, against)
    parameters = [c for c in table.attrs.get("parameters", []) if c not in (against, "seed")]
    axes_figure, axis = plt.subplots(figsize=(6, 4))
    _draw_lines(axis, rows, figure, parameters, categories)
    if categories is not None:
        axis.set_xticks(range(len(categories)), [str(c) for c in categories])
        axis.set_xlim(-0.5, len(categories) - 0.5)
    _log_scales(axis, rows, figure, categories)
    axis.set_xlabel(against)
    over_seeds = "seed" in table.attrs.get("parameters", [])
    axis.set_ylabel(figure + (" (mean, min–max over seeds)" if over_seeds else ""))
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


def _plotted_rows(table, figure: str, against: str):
    """(the finished rows with a number for ``figure`` and its x position in column ``_x``, the
    categories of a non-numeric ``against`` or None); PlotError when nothing is left to plot."""
    import pandas as pd

    for name, role in ((figure, "figure"), (against, "parameter")):
        if name not in table.columns:
            raise PlotError(f"--plot: no column {name!r} ({role}); "
                            f"columns: {', '.join(map(str, table.columns))}")
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
    return rows, categories


def _draw_lines(axis, rows, figure: str, parameters: list, categories) -> None:
    """One line per combination of ``parameters``: the mean over the other rows (seeds) at each
    x, with a band (numbers) or bars (categories) from the smallest to the largest value."""
    groups = rows.groupby(parameters, dropna=False) if parameters else [((), rows)]
    for label, group in groups:
        statistics = group.groupby("_x")[figure].agg(["mean", "min", "max"]).sort_index()
        values = label if isinstance(label, tuple) else (label,)
        name = ", ".join(f"{key}={value}" for key, value in zip(parameters, values, strict=True))
        axis.plot(statistics.index, statistics["mean"], marker="o",
                  linestyle="-" if categories is None else "none", label=name or figure)
        if (statistics["max"] > statistics["min"]).any():
            if categories is None:
                axis.fill_between(statistics.index, statistics["min"], statistics["max"], alpha=0.2)
            else:
                axis.vlines(statistics.index, statistics["min"], statistics["max"], alpha=0.5)


def _log_scales(axis, rows, figure: str, categories) -> None:
    """A logarithmic axis where the positive values span more than two decades (never categories)."""
    import pandas as pd

    x = rows["_x"] if categories is None else pd.Series([], dtype=float)
    for values, scale in ((x, axis.set_xscale), (rows[figure], axis.set_yscale)):
        positive = values[values > 0]
        if len(values) and len(positive) == len(values) and positive.max() > 100 * positive.min():
            scale("log")


def plot_name(figure: str, against: str) -> str:
    def safe(text):
        return re.sub(r"[^\w.-]+", "_", text)
    return f"{safe(figure)}_vs_{safe(against)}.png"

