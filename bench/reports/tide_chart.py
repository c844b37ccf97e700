"""A run's TIDE chart: the AP50 each error type costs (record["metrics"]["extra"]["tide"], bench.metrics.tide).

Bars of dAP for the six main types (Cls, Loc, Both, Dupe, Bkg, Miss) and the two summaries (FP, FN), each
labelled with its value and the count of errors behind it: what to fix first. Built without pyplot.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.util.errors import UserError

MAIN = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
SUMMARY = ("FP", "FN")


def tide_figure(tide: Mapping[str, Any], title: str = "") -> Figure:
    """The chart of one record's extra metric "tide" ({"values": {"dAP_Cls": ..., "n_Cls": ..., "AP50": ...}})."""
    values = tide.get("values", {})
    missing = [f"dAP_{t}" for t in (*MAIN, *SUMMARY) if f"dAP_{t}" not in values]
    if missing:
        raise UserError(f"not a TIDE result (bench.metrics.tide): it lacks {missing}")
    names = [*MAIN, *SUMMARY]
    heights = [float(values[f"dAP_{t}"]) for t in names]
    fig = Figure(figsize=(6.5, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = ["#4c72b0"] * len(MAIN) + ["#999999"] * len(SUMMARY)
    bars = ax.bar(names, heights, color=colours)
    for bar, t, h in zip(bars, names, heights):
        count = values.get(f"n_{t}")
        label = f"{h:.1f}" + ("" if count is None else f"\n({int(count)})")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, h), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("AP50 gained by fixing (dAP)")
    ax.set_ylim(0, max(heights + [1.0]) * 1.3)
    ax.set_title(f"{title}  (AP50 {float(values.get('AP50', float('nan'))):.1f}; counts in brackets)".strip(),
                 fontsize=9)
    return fig


def write_tide_chart(tide: Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """tide_figure saved as PNG at `path`."""
    path = Path(path)
    tide_figure(tide, title).savefig(path, dpi=110)
    return path
