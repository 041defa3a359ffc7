"""Matplotlib figures of the curve tables (for MLflow); DVC plots read the tables themselves.

Figures are built with the object API (``matplotlib.figure.Figure``), so no global pyplot
state or display backend is touched.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

_SPECS = {
    "roc": ("fpr", "tpr", "False positive rate", "True positive rate", "ROC (out-of-time test)"),
    "pr": ("recall", "precision", "Recall", "Precision", "Precision-recall (out-of-time test)"),
    "reliability": (
        "mean_predicted",
        "observed_rate",
        "Mean predicted probability",
        "Observed SQL rate",
        "Reliability (out-of-time test)",
    ),
    "gains": (
        "fraction_contacted",
        "fraction_of_positives",
        "Share of leads contacted (by score)",
        "Share of SQLs found",
        "Cumulative gains (out-of-time test)",
    ),
}


def curve_figure(kind: str, table: pd.DataFrame) -> Figure:
    """One figure with a line per model for a ``metrics.curve_tables`` table of ``kind``."""
    x, y, xlabel, ylabel, title = _SPECS[kind]
    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    for model, part in table.groupby("model", sort=True):
        ax.plot(
            part[x], part[y], marker="o" if kind == "reliability" else None, markersize=3, label=str(model)
        )
    if kind in ("roc", "gains", "reliability"):
        ax.plot(
            [0, 1],
            [0, 1],
            linestyle="--",
            color="grey",
            linewidth=0.8,
            label="chance" if kind != "reliability" else "perfect",
        )
    if kind == "reliability":
        top = float(max(table[x].max(), table[y].max(), 0.05))
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def curve_figures(tables: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    """A figure for every table in ``tables`` (keys as in ``metrics.curve_tables``)."""
    return {kind: curve_figure(kind, table) for kind, table in tables.items()}
