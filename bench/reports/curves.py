"""Cost curves from the records: AP against shots, trainable parameters and training compute.

Every function takes the records DataFrame (bench.reports.load) and returns a matplotlib Figure built
without pyplot (no global state; the Agg canvas renders PNG and SVG). A series is one
(model, checkpoint, variant, regime); a point is its shots setting. A point's y is the mean over the
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

from bench.errors import UserError
from bench.reports.leaderboard import expected_seed_sets
from bench.reports.load import regime_order, shots_order

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
                     # training only: the record's device_hours also counts inference time
                     "train_device_hours": g["train_seconds"].mean() / 3600.0,
                     "device": ", ".join(sorted(set(g["device"])))})
    return pd.DataFrame(rows)


def series_label(model: str, checkpoint: str, variant: str, regime: str) -> str:
    parts = [regime, model + (f" ({checkpoint})" if checkpoint else "")]
    if variant:
        parts.append(variant)
    return " · ".join(parts)


def _distinguishing(variants: list[str]) -> list[str]:
    """Each variant reduced to the settings that tell the series apart: a key=value that every series
    setting that key shares (e.g. a training budget, the split) is dropped from the legend."""
    split = [[t for t in v.split(", ") if t] for v in variants]
    values: dict[str, set[str]] = {}
    for tokens in split:
        for t in tokens:
            values.setdefault(t.split("=", 1)[0], set()).add(t)
    varying = {k for k, v in values.items() if len(v) > 1}
    return [", ".join(t for t in tokens if t.split("=", 1)[0] in varying) for tokens in split]


def _series(points: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    groups = dict(iter(points.groupby(SERIES_KEYS, sort=False)))
    keys = sorted(groups, key=lambda k: (k[0], k[1], k[2], regime_order(k[3])))
    variants = _distinguishing([k[2] for k in keys])
    # a checkpoint is named only when series differ in it, and then by its file name
    ckpts = {k[1] for k in keys}
    labels = [series_label(k[0], Path(k[1]).stem if len(ckpts) > 1 and k[1] else "", v, k[3])
              for k, v in zip(keys, variants)]
    return [(label, groups[k].sort_values("x_order")) for label, k in zip(labels, keys)]


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


def _draw_shots(ax, points: pd.DataFrame) -> None:
    """One line per series over categorical shots positions; a ±std band where seeds allow one."""
    labels = sorted(set(points["shots_label"]), key=shots_order)
    pos = _shots_axis(ax, labels)
    for label, s in _series(points):
        x = np.array([pos[v] for v in s["shots_label"]], dtype=float)
        (line,) = ax.plot(x, s["y"], marker="o", label=label)
        if s["std"].notna().any():
            std = s["std"].fillna(0.0).to_numpy()
            ax.fill_between(x, s["y"] - std, s["y"] + std, color=line.get_color(), alpha=0.2, linewidth=0)
        for xi, yi, ok in zip(x, s["y"], s["complete"]):
            if not ok:
                ax.annotate("*", (xi, yi), textcoords="offset points", xytext=(4, 4), color=line.get_color())


def ap_vs_shots(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> Figure:
    """AP against training shots, one line per regime (and model/variant), ±1 std band over seeds."""
    points = series_points(df, seeds)
    metric = df["primary"].iloc[0]
    fig = _new_figure()
    ax = fig.add_subplot()
    _draw_shots(ax, points)
    ax.set_xlabel("training images per class (shots); 0 = zero-shot")
    ax.set_ylabel(f"{metric} ({_scope(df)}), %")
    ax.set_title(f"{metric} vs. training shots per regime (band: ±1 std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(title=f"regime · model · variant   ({INCOMPLETE_NOTE})", fontsize="small", title_fontsize="small")
    return fig


def _scatter_by_regime(ax, points: pd.DataFrame, x_col: str) -> int:
    """One scatter per regime; points with x <= 0 cannot sit on a log axis and are counted, not drawn."""
    left_out = int((points[x_col] <= 0).sum() + points[x_col].isna().sum())
    shown = points[points[x_col] > 0].copy()
    shown["variant"] = _distinguishing(shown["variant"].tolist()) if len(shown) else []
    for regime in sorted(set(shown["regime"]), key=regime_order):
        r = shown[shown["regime"] == regime]
        err = r["std"].fillna(0.0).to_numpy()
        ax.errorbar(r[x_col], r["y"], yerr=err, fmt="none", ecolor="0.6", elinewidth=1)
        ax.scatter(r[x_col], r["y"], label=regime, s=36, zorder=3)
        for xv, yv, shots, ok, variant in zip(r[x_col], r["y"], r["shots_label"], r["complete"], r["variant"]):
            text = f"{shots}-shot" if shots not in ("0", "all") else ("zero-shot" if shots == "0" else "all")
            text += f" {variant}" if variant else ""
            ax.annotate(text + ("" if ok else " *"), (xv, yv), textcoords="offset points", xytext=(4, 3),
                        fontsize="x-small")
    ax.set_xscale("log")
    ax.grid(alpha=0.3, which="both")
    return left_out


def ap_vs_params(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> Figure:
    """AP against trainable parameters (log axis): what each regime buys per parameter it trains."""
    points = series_points(df, seeds)
    metric = df["primary"].iloc[0]
    fig = _new_figure()
    ax = fig.add_subplot()
    left_out = _scatter_by_regime(ax, points, "trainable_params")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"{metric} ({_scope(df)}), %")
    title = f"{metric} vs. trainable parameters (bars: ±1 std over seeds)"
    if left_out:
        title += f"\n{left_out} point(s) with no trainable parameters (zero-shot) not shown on the log axis"
    ax.set_title(title, fontsize="medium")
    _legend_or_note(ax)
    return fig


def _legend_or_note(ax) -> None:
    """A legend of the regimes drawn, or a note saying that nothing could be drawn."""
    if ax.get_legend_handles_labels()[1]:
        ax.legend(title=f"regime  ({INCOMPLETE_NOTE})", fontsize="small", title_fontsize="small")
    else:
        ax.text(0.5, 0.5, "no runs with a positive value on this axis", transform=ax.transAxes, ha="center")


def device_kind(devices: Iterable[str]) -> str:
    """'GPU', 'CPU' or 'GPU and CPU' from record device strings ('cpu', 'cuda:0', 'NVIDIA H200', ...)."""
    kinds = {"CPU" if str(d).lower().startswith("cpu") else "GPU" for d in devices}
    return " and ".join(sorted(kinds, reverse=True)) if kinds else "device"


def ap_vs_compute(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> Figure:
    """AP against training compute per run in device-hours (log axis), naming the device kind.

    Compute is the record's train_seconds (the cost field device_hours also includes inference)."""
    points = series_points(df, seeds)
    metric = df["primary"].iloc[0]
    kind = device_kind(df["device"])
    fig = _new_figure()
    ax = fig.add_subplot()
    left_out = _scatter_by_regime(ax, points, "train_device_hours")
    unit = f"{kind}-hours" if " and " not in kind else f"device-hours, {kind} mixed"
    ax.set_xlabel(f"training compute per run ({unit}, log scale)")
    ax.set_ylabel(f"{metric} ({_scope(df)}), %")
    title = f"{metric} vs. training compute (bars: ±1 std over seeds)"
    if left_out:
        title += f"\n{left_out} point(s) without training compute (zero-shot) not shown on the log axis"
    ax.set_title(title, fontsize="medium")
    _legend_or_note(ax)
    return fig


def per_task(df: pd.DataFrame, seeds: Iterable[int] | None = None, ncols: int = 3) -> Figure:
    """Small multiples: one panel per task, AP against shots per regime, one shared legend."""
    tasks = sorted(set(df["task"]))
    ncols = max(1, min(ncols, len(tasks)))
    nrows = math.ceil(len(tasks) / ncols)
    fig = _new_figure(width=3.6 * ncols + 2.5, height=2.8 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=False)
    expected = expected_seed_sets(df, seeds)  # seeds a task should have: those of its peers
    for ax, task in zip(axes.flat, tasks):
        sub = df[df["task"] == task]
        _draw_shots(ax, series_points(sub, seeds, expected))
        ax.set_title(f"{task}", fontsize="medium")
        ax.set_xlabel("shots")
        ax.set_ylabel(f"{sub['primary'].iloc[0]}, %")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(tasks):]:
        fig.delaxes(ax)
    handles, labels = {}, []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="outside right upper", fontsize="small",
               title=f"regime · model · variant\n({INCOMPLETE_NOTE})", title_fontsize="small")
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
