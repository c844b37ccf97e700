"""Cost curves from the records: AP against shots, trainable parameters and training compute
(images seen in training).

Every function takes the records DataFrame (bench.reports.load) and returns a matplotlib Figure built
without pyplot (no global state; the Agg canvas renders PNG and SVG). A series is one
(model, checkpoint, variant, regime), coloured by regime and marked by model/variant the same way in
every figure; legends sit outside the axes; a point is its shots setting. A point's y is the mean over the
selected tasks of each task's seed-mean; its band is ±1 std over seeds of the per-seed task mean.
Points over fewer tasks or seeds than the figure's full set are starred, not silently averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bench.reports.labels import DEFAULT_LABEL, short_labels
from bench.reports.leaderboard import expected_seed_sets
from bench.reports.load import regime_order, shots_order
from bench.results.records import REGIMES
from bench.util.errors import UserError

SERIES_KEYS = ["model", "checkpoint", "variant", "regime"]
POINT_KEYS = [*SERIES_KEYS, "shots_label"]
INCOMPLETE_NOTE = "* = incomplete: fewer tasks or seeds than the others"


def select_tasks(df: pd.DataFrame, tasks: Iterable[str] | None = None, group: str | None = None) -> pd.DataFrame:
    """Restrict to the named tasks or to one group; the selection must share one primary metric,
    since an average of AP and recall means nothing."""
    if tasks:
        tasks = list(tasks)
        unknown = sorted(set(tasks) - set(df["task"]))
        if unknown:
            raise UserError(f"no records for task(s) {unknown}; tasks with records: {sorted(set(df['task']))}")
        df = df[df["task"].isin(tasks)]
    if group:
        in_group = df["groups"].map(lambda gs: group in gs)
        if not in_group.any():
            groups = sorted({g for gs in df["groups"] for g in gs})
            raise UserError(f"no records in group {group!r}; groups with records: {groups}")
        df = df[in_group]
    if df.empty:
        raise UserError("no records to plot")
    primaries = sorted(set(df["primary"]))
    if len(primaries) > 1:
        raise UserError(f"the selected tasks mix primary metrics {primaries}; pick tasks with one metric "
                        "(--tasks or --group)")
    return df


def series_points(df: pd.DataFrame, seeds: Iterable[int] | None = None,
                  expected: dict[tuple[str, str], frozenset] | None = None) -> pd.DataFrame:
    """One line per (series, shots): y mean/std, task and seed counts, complete flag, mean cost per run.

    expected: seeds each (regime, shots) should have; default from `seeds` or from the records given."""
    all_tasks = set(df["task"])
    expected = expected if expected is not None else expected_seed_sets(df, seeds)
    if seeds is not None:
        df = df[df["seed"].isin(list(seeds))]
    rows = []
    for key, g in df.groupby(POINT_KEYS, sort=False):
        base = dict(zip(POINT_KEYS, key))
        task_means = g.groupby("task")["value"].mean()
        by_seed = g.pivot_table(index="seed", columns="task", values="value").dropna()
        seed_means = by_seed.mean(axis=1)
        n_seeds = int(g.groupby("task")["seed"].nunique().min())
        n_expected = len(expected[(base["regime"], base["shots_label"])])
        rows.append({**base, "x_order": shots_order(base["shots_label"]), "y": task_means.mean(),
                     "std": seed_means.std(ddof=1) if len(seed_means) > 1 else math.nan,
                     "n_tasks": len(task_means), "n_seeds": n_seeds,
                     "complete": len(task_means) == len(all_tasks) and n_seeds >= n_expected,
                     "trainable_params": g["trainable_params"].median(),
                     "images_seen": g["images_seen"].mean(),
                     "device": ", ".join(sorted(set(g["device"])))})
    return pd.DataFrame(rows)


def series_label(model: str, variant: str, regime: str) -> str:
    parts = [regime, model]
    if variant and variant != DEFAULT_LABEL:
        parts.append(variant)
    return " · ".join(parts)


# colour = regime, marker and line style = model/variant: the same series looks the same in every figure
REGIME_COLOURS = dict(zip(REGIMES, ("#7f7f7f", "#2ca02c", "#1f77b4", "#d62728")))
EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")


class SeriesStyles:
    """Label, colour, marker and line style per series, fixed from the whole record set, so a panel
    that lacks some series still draws the others as every other figure does."""

    def __init__(self, df: pd.DataFrame):
        keys = sorted({tuple(k) for k in df[SERIES_KEYS].itertuples(index=False)})
        labels = short_labels([(k[0], k[3], k[1], k[2]) for k in keys])
        self.variant = dict(zip(keys, labels))
        keys.sort(key=lambda k: (k[0], self.variant[k], regime_order(k[3])))
        kinds = sorted({(k[0], lab) for k, lab in self.variant.items()})
        extra = sorted({k[3] for k in keys} - set(REGIME_COLOURS))
        colours = {**REGIME_COLOURS, **{r: EXTRA_COLOURS[i % len(EXTRA_COLOURS)] for i, r in enumerate(extra)}}
        self._style = {}
        for k in keys:
            i = kinds.index((k[0], self.variant[k]))
            self._style[k] = {"color": colours[k[3]], "marker": MARKERS[i % len(MARKERS)],
                              "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        self.order = keys

    def label(self, key: tuple) -> str:
        return series_label(key[0], self.variant[key], key[3])

    def style(self, key: tuple) -> dict:
        return dict(self._style[key])


def _series(points: pd.DataFrame, styles: SeriesStyles) -> list[tuple[tuple, pd.DataFrame]]:
    groups = {tuple(k): g for k, g in points.groupby(SERIES_KEYS, sort=False)}
    return [(k, groups[k].sort_values("x_order")) for k in styles.order if k in groups]


def _new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _scope(df: pd.DataFrame) -> str:
    tasks = sorted(set(df["task"]))
    return tasks[0] if len(tasks) == 1 else f"mean over {len(tasks)} tasks"


def _shots_axis(ax, labels: list[str]) -> dict[str, int]:
    pos = {lab: i for i, lab in enumerate(labels)}
    ax.set_xticks(range(len(labels)), [("all (full set)" if lab == "all" else lab) for lab in labels])
    ax.set_xlim(-0.3, len(labels) - 0.7)
    return pos


def _draw_shots(ax, points: pd.DataFrame, styles: SeriesStyles) -> None:
    """One line per series over categorical shots positions; a ±std band where seeds allow one."""
    labels = sorted(set(points["shots_label"]), key=shots_order)
    pos = _shots_axis(ax, labels)
    for key, s in _series(points, styles):
        x = np.array([pos[v] for v in s["shots_label"]], dtype=float)
        style = styles.style(key)
        (line,) = ax.plot(x, s["y"], label=styles.label(key), markersize=5, **style)
        if s["std"].notna().any():
            std = s["std"].fillna(0.0).to_numpy()
            ax.fill_between(x, s["y"] - std, s["y"] + std, color=style["color"], alpha=0.15, linewidth=0)
        for xi, yi, ok in zip(x, s["y"], s["complete"]):
            if not ok:
                ax.annotate("*", (xi, yi), textcoords="offset points", xytext=(4, 4), color=style["color"])


def _outside_legend(fig: Figure, title: str, loc: str = "outside right upper", ncols: int = 1) -> None:
    """One legend for the figure, outside every axes (right, or below), so it covers no data point."""
    handles: dict[str, object] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc=loc, ncols=ncols, fontsize="small",
                   title=title, title_fontsize="small")


def ap_vs_shots(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> Figure:
    """AP against training shots, one line per regime (and model/variant), ±1 std band over seeds."""
    points = series_points(df, seeds)
    metric = df["primary"].iloc[0]
    fig = _new_figure(9.0, 4.5)
    ax = fig.add_subplot()
    _draw_shots(ax, points, SeriesStyles(df))
    ax.set_xlabel("training images per class (shots); 0 = zero-shot")
    ax.set_ylabel(f"{metric} ({_scope(df)}), %")
    ax.set_title(f"{metric} vs. training shots per regime (band: ±1 std over seeds)")
    ax.grid(alpha=0.3)
    _outside_legend(fig, f"regime · model · variant\n({INCOMPLETE_NOTE})")
    return fig


def _scatter(ax, points: pd.DataFrame, x_col: str, styles: SeriesStyles) -> int:
    """One marker set per series; points with x <= 0 cannot sit on a log axis and are counted, not drawn."""
    left_out = int((points[x_col] <= 0).sum() + points[x_col].isna().sum())
    shown = points[points[x_col] > 0]
    for key, r in _series(shown, styles):
        style = styles.style(key)
        ax.errorbar(r[x_col], r["y"], yerr=r["std"].fillna(0.0).to_numpy(), fmt="none", ecolor=style["color"],
                    alpha=0.5, elinewidth=1)
        ax.scatter(r[x_col], r["y"], label=styles.label(key), s=36, zorder=3, color=style["color"],
                   marker=style["marker"])
        for xv, yv, shots, ok in zip(r[x_col], r["y"], r["shots_label"], r["complete"]):
            text = {"0": "zero-shot", "all": "all"}.get(shots, f"{shots}-shot")
            ax.annotate(text + ("" if ok else " *"), (xv, yv), textcoords="offset points", xytext=(4, 3),
                        fontsize="x-small", color=style["color"])
    ax.set_xscale("log")
    if len(shown) and shown[x_col].max() < 10 * shown[x_col].min():
        # under a decade the log axis has no labelled power of ten: label the ticks as plain numbers
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    ax.grid(alpha=0.3, which="both")
    return left_out


def ap_vs_params(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> Figure:
    """AP against trainable parameters (log axis): what each regime buys per parameter it trains."""
    return _log_axis_figure(df, seeds, "trainable_params", "trainable parameters (count, log scale)",
                            "trainable parameters", "with no trainable parameters (zero-shot)")


def _legend_or_note(fig: Figure, ax) -> None:
    """A legend of the series drawn (outside the axes), or a note saying that nothing could be drawn."""
    if ax.get_legend_handles_labels()[1]:
        _outside_legend(fig, f"regime · model · variant\n({INCOMPLETE_NOTE})")
    else:
        ax.text(0.5, 0.5, "no runs with a positive value on this axis", transform=ax.transAxes, ha="center")


def ap_vs_compute(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> Figure:
    """AP against training compute per run, measured in training images seen (iterations x batch size,
    summed over data-parallel processes: the record's images_seen), log axis.

    Images seen, not wall-clock seconds: runs with the same iteration budget cost the same however
    long the machine took, and the count is comparable across devices."""
    return _log_axis_figure(df, seeds, "images_seen",
                            "training compute per run: images seen (iterations × batch size, log scale)",
                            "training compute", "without training (zero-shot)")


def _log_axis_figure(df: pd.DataFrame, seeds: Iterable[int] | None, key: str, xlabel: str, what: str,
                     zero_points: str) -> Figure:
    """The primary metric against a cost on a log x axis; points with a zero cost are counted in the title."""
    points = series_points(df, seeds)
    metric = df["primary"].iloc[0]
    fig = _new_figure(9.0, 4.5)
    ax = fig.add_subplot()
    left_out = _scatter(ax, points, key, SeriesStyles(df))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} ({_scope(df)}), %")
    title = f"{metric} vs. {what} (bars: ±1 std over seeds)"
    if left_out:
        title += f"\n{left_out} point(s) {zero_points} not shown on the log axis"
    ax.set_title(title, fontsize="medium")
    _legend_or_note(fig, ax)
    return fig


def per_task(df: pd.DataFrame, seeds: Iterable[int] | None = None, ncols: int = 4) -> Figure:
    """Small multiples: one panel per task, score against shots per series, one shared legend outside
    the panels (wide groups such as ODinW-13 get one readable panel per dataset)."""
    tasks = sorted(set(df["task"]))
    ncols = max(1, min(ncols, len(tasks)))
    nrows = math.ceil(len(tasks) / ncols)
    fig = _new_figure(width=max(3.2 * ncols, 7.5), height=2.6 * nrows + 2.2)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=False)
    expected = expected_seed_sets(df, seeds)  # seeds a task should have: those of its peers
    styles = SeriesStyles(df)
    for ax, task in zip(axes.flat, tasks):
        sub = df[df["task"] == task]
        _draw_shots(ax, series_points(sub, seeds, expected), styles)
        ax.set_title(f"{task}", fontsize="medium")
        ax.set_xlabel("shots (images per class)")
        ax.set_ylabel(f"{sub['primary'].iloc[0]}, %")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(tasks):]:
        fig.delaxes(ax)
    # below the panels: a right-hand legend would collide with the title over a single narrow panel
    _outside_legend(fig, f"regime · model · variant   ({INCOMPLETE_NOTE})", loc="outside lower center", ncols=2)
    fig.suptitle("Per-task score vs. training shots (band: ±1 std over seeds)")
    return fig


def save_figure(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.svg; SVG metadata carries no date so reruns give the same file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1], metadata={"Date": None})
    return paths
