"""`glip-bench curves`: cost-curve figures (PNG and SVG) rebuilt from the run records."""

from __future__ import annotations

import argparse

from bench.util.errors import UserError

HELP = ("plot cost curves (AP vs shots, trainable parameters, training compute; per-task panels) from records; "
        "a selection that mixes primary metrics (AP, R@1) gets one set of figures per metric (<stem>-ap, <stem>-r1)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="folder searched recursively for **/record.json")
    parser.add_argument("--out", default=None, help="output folder (default: <results>/plots)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names to include (default: all)")
    parser.add_argument("--group", default=None, help="only tasks of this group, e.g. odinw13 or synth")
    parser.add_argument("--seeds", default=None, help="expected seeds, e.g. 0,1,2 (default: from the records)")


def metric_slug(metric: str) -> str:
    """A file-name part for a metric name: 'R@1' -> 'r1', 'AP' -> 'ap'."""
    return "".join(c for c in metric.lower() if c.isalnum())


def per_metric(df, tasks: list[str] | None, group: str | None) -> dict:
    """The selected records split by primary metric (bench.reports.curves.select_tasks on each part)."""
    from bench.reports import curves

    if tasks and set(tasks) - set(df["task"]) or group and not df["groups"].map(lambda gs: group in gs).any():
        curves.select_tasks(df, tasks, group)  # raises the error that names the unknown task or group
    out = {}
    for metric in sorted(set(df["primary"])):
        part = df[df["primary"] == metric]
        names = [t for t in tasks if t in set(part["task"])] if tasks else None
        if tasks and not names or group and not part["groups"].map(lambda gs: group in gs).any():
            continue
        out[metric] = curves.select_tasks(part, names, group)
    if not out:
        raise UserError("no records to plot")
    return out


def main(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from bench.commands.leaderboard import parse_seeds
    from bench.reports import curves
    from bench.reports.load import load_record_frame
    from bench.util.logs import get_logger

    df = load_record_frame(args.results)
    if df.empty:
        raise UserError(f"no record.json found under {args.results}; run `glip-bench run` first or pass --results")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    seeds = parse_seeds(args.seeds)
    if seeds is not None:
        df = df[df["seed"].isin(seeds)]
    out = Path(args.out) if args.out else Path(args.results) / "plots"
    selections = per_metric(df, tasks, args.group)
    written = []
    for metric, sub in selections.items():  # an average of AP and recall means nothing: figures per metric
        suffix = "" if len(selections) == 1 else "-" + metric_slug(metric)
        for stem, make in (("ap-vs-shots", curves.ap_vs_shots), ("ap-vs-params", curves.ap_vs_params),
                           ("ap-vs-compute", curves.ap_vs_compute), ("per-task", curves.per_task)):
            written += curves.save_figure(make(sub, seeds), out, stem + suffix)
    get_logger("curves").info("%d figures from %d records -> %s", len(written), len(df),
                              ", ".join(map(str, written)))
    return 0
