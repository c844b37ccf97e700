"""`glip-bench ablation`: paired comparison of runs that differ in one override (e.g. fusion)."""

from __future__ import annotations

import argparse

# what necessarily differs between the sides of a model ablation: each side's weights were trained as that side
DEFAULT_IGNORE = "checkpoint"

HELP = "paired ablation of one override (e.g. --a fusion=late --b fusion=deep) with bootstrap CIs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--a", required=True, help="side a, KEY=VALUE[,KEY=VALUE], e.g. fusion=late")
    parser.add_argument("--b", required=True, help="side b, same keys as --a, e.g. fusion=deep")
    parser.add_argument("--results", default="results", help="folder searched recursively for **/record.json")
    parser.add_argument("--out", default=None, help="output folder (default: <results>/ablation)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--n-resamples", type=int, default=9999, help="bootstrap resamples")
    parser.add_argument("--unset-as", choices=["a", "b"], default=None,
                        help="count runs that do not set the key as this side (when that side is the default)")
    parser.add_argument("--ignore", default=DEFAULT_IGNORE, metavar="KEYS",
                        help="pairing keys allowed to differ between the sides, comma-separated (default: "
                             f"{DEFAULT_IGNORE}: a fusion variant is its own pretrained model, so its weights "
                             "always differ; pass --ignore '' to require the same checkpoint too)")


def _ignore(text: str | None) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()] if text else []


def main(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from bench.reports import ablation
    from bench.reports.curves import save_figure
    from bench.reports.load import load_record_frame
    from bench.util.errors import UserError
    from bench.util.io import atomic_write_text
    from bench.util.logs import get_logger

    log = get_logger("ablation")
    df = load_record_frame(args.results)
    if df.empty:
        raise UserError(f"no record.json found under {args.results}; run `glip-bench run` first or pass --results")
    a, b = ablation.parse_assignments(args.a), ablation.parse_assignments(args.b)
    pairs, counts = ablation.pair_runs(df, a, b, args.unset_as, ignore=_ignore(args.ignore))
    table = ablation.ablation_table(pairs, seed=args.seed, n_resamples=args.n_resamples)
    try:
        gap = ablation.tuning_gap(df, a, b, args.unset_as, seed=args.seed, n_resamples=args.n_resamples,
                                  ignore=_ignore(args.ignore))
    except UserError as e:
        gap = str(e)
        log.warning("prompt-tuning vs full-ft gap not computed: %s", e)
    out = Path(args.out) if args.out else Path(args.results) / "ablation"
    metrics = sorted(set(df.loc[df["task"].isin(pairs["task"]), "primary"]))
    atomic_write_text(out / "ablation.md", ablation.render_markdown(table, gap, a, b, len(df), counts, args.seed,
                                                                   ignore=_ignore(args.ignore)))
    atomic_write_text(out / "ablation.csv", table.to_csv(index=False, lineterminator="\n"))
    if not isinstance(gap, str):
        atomic_write_text(out / "ablation-gap.csv", gap.to_csv(index=False, lineterminator="\n"))
    fig = ablation.forest_plot(table, a, b, metric="/".join(metrics))
    written = save_figure(fig, out, "ablation-forest")
    overall = table.iloc[-1]
    log.info("%d pairs; overall b - a = %.2f [%.2f, %.2f] (Wilcoxon p = %.3g) -> %s", int(overall["pairs"]),
             overall["mean_diff"], overall["ci_low"], overall["ci_high"], overall["wilcoxon_p"],
             ", ".join(map(str, [out / "ablation.md", out / "ablation.csv", *written])))
    return 0
