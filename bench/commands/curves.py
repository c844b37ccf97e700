"""`glip-bench curves`: cost-curve figures (PNG and SVG) rebuilt from the run records."""

from __future__ import annotations

import argparse

HELP = "plot cost curves (AP vs shots, trainable parameters, training compute; per-task panels) from records"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="folder searched recursively for **/record.json")
    parser.add_argument("--out", default=None, help="output folder (default: <results>/plots)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names to include (default: all)")
    parser.add_argument("--group", default=None, help="only tasks of this group, e.g. odinw13 or synth")
    parser.add_argument("--seeds", default=None, help="expected seeds, e.g. 0,1,2 (default: from the records)")


def main(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from bench.commands.leaderboard import parse_seeds
    from bench.errors import UserError
    from bench.logs import get_logger
    from bench.reports import curves
    from bench.reports.load import load_records

    df = load_records(args.results)
    if df.empty:
        raise UserError(f"no record.json found under {args.results}; run `glip-bench run` first or pass --results")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    df = curves.select_tasks(df, tasks, args.group)
    seeds = parse_seeds(args.seeds)
    if seeds is not None:
        df = df[df["seed"].isin(seeds)]
    out = Path(args.out) if args.out else Path(args.results) / "plots"
    written = []
    for stem, make in (("ap-vs-shots", curves.ap_vs_shots), ("ap-vs-params", curves.ap_vs_params),
                       ("ap-vs-compute", curves.ap_vs_compute), ("per-task", curves.per_task)):
        written += curves.save_figure(make(df, seeds), out, stem)
    get_logger("curves").info("%d figures from %d records -> %s", len(written), len(df),
                              ", ".join(map(str, written)))
    return 0
