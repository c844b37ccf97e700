"""`glip-bench leaderboard`: LEADERBOARD.md / .csv / .tex / .html rebuilt from the run records."""

from __future__ import annotations

import argparse

HELP = "build the leaderboard (Markdown, CSV, LaTeX, HTML) from run records and reported numbers"


def parse_seeds(text: str | None) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]; None stays None (expected seeds then come from the records)."""
    if text is None:
        return None
    from bench.util.errors import UserError

    try:
        return sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError as e:
        raise UserError(f"--seeds takes comma-separated integers such as 0,1,2 (got {text!r})") from e


def registry_group_sizes() -> dict[str, int]:
    """Group sizes from the task registry (tasks/*.yaml), which knows the tasks nobody has run yet.

    Read here, not in bench.reports, which builds its tables from records alone. Optional: the tables
    are still built when the registry cannot be read."""
    from bench.util.logs import get_logger

    try:
        from bench.tasks.registry import all_groups

        return {g: len(members) for g, members in all_groups().items()}
    except Exception as e:  # noqa: BLE001 - any registry problem only costs the extra knowledge
        get_logger("leaderboard").warning(
            "task registry not readable (%s); group sizes come from the records and --group-size", e)
        return {}


def parse_group_sizes(items: list[str] | None) -> dict[str, int]:
    from bench.util.errors import UserError

    sizes = {}
    for item in items or []:
        name, _, n = item.partition("=")
        if not name or not n.isdigit():
            raise UserError(f"--group-size takes GROUP=N such as odinw13=13 (got {item!r})")
        sizes[name] = int(n)
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="folder searched recursively for **/record.json")
    parser.add_argument("--out", default=None, help="output folder (default: the --results folder)")
    parser.add_argument("--reference", action="append", default=None, metavar="CSV",
                        help="reported-numbers CSV (repeatable; default: results/reference/reported-numbers.csv and "
                             "rf100vl-numbers.csv of this repository; add paper-numbers.csv for the paper's ODinW "
                             "few-shot rows)")
    parser.add_argument("--no-reference", action="store_true", help="leave out the reported (published) rows")
    parser.add_argument("--seeds", default=None,
                        help="expected seeds, e.g. 0,1,2 (default: every seed seen for a row's regime and shots)")
    parser.add_argument("--group-size", action="append", default=None, metavar="GROUP=N",
                        help="number of tasks a group should have (default: the task registry's groups, "
                             "odinw13=13, odinw35=35, else the tasks seen in the records)")
    parser.add_argument("--screenshot", default=None, metavar="PNG",
                        help="also write a headless-Chromium screenshot of leaderboard.html (needs chromium)")
    parser.add_argument("--screenshot-width", type=int, default=1366, metavar="PX",
                        help="screen width of the screenshot in pixels (default 1366)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.reports import leaderboard as lb
    from bench.reports.load import load_record_frame
    from bench.reports.reference import DEFAULT_REFERENCE_FILES, default_reference_dir, load_reference
    from bench.util.errors import UserError
    from bench.util.io import atomic_write_text
    from bench.util.logs import get_logger

    log = get_logger("leaderboard")
    df = load_record_frame(args.results)
    if df.empty:
        raise UserError(f"no record.json found under {args.results}; run `glip-bench run` first or pass --results")
    reference = None
    if not args.no_reference:
        paths = args.reference
        if paths is None:
            folder = default_reference_dir()
            paths = [folder / name for name in DEFAULT_REFERENCE_FILES if (folder / name).is_file()]
            if not paths:
                log.warning("no reference numbers in %s; the table has reproduced rows only", folder)
        reference = load_reference(paths) if paths else None
    seeds = parse_seeds(args.seeds)
    sizes = {**registry_group_sizes(), **parse_group_sizes(args.group_size)}
    table = lb.leaderboard_table(df, reference, seeds=seeds, group_sizes=sizes)
    values = lb.leaderboard_values(df, seeds=seeds, group_sizes=sizes)
    out = Path(args.out or args.results)
    n = len(df)
    outputs = {
        "LEADERBOARD.md": lb.render_markdown(table, n),
        "leaderboard.csv": lb.render_csv(table),
        "leaderboard.tex": lb.render_latex(table, n),
        "leaderboard.html": lb.render_html(table, n),
        "leaderboard-values.csv": lb.values_to_csv(values),
    }
    for name, text in outputs.items():
        atomic_write_text(out / name, text)
    if args.screenshot:
        from bench.reports.browser import screenshot

        png = screenshot(out / "leaderboard.html", args.screenshot, width=args.screenshot_width)
        log.info("screenshot of %s at %d px -> %s", out / "leaderboard.html", args.screenshot_width, png)
    kinds = table["kind"].value_counts()
    log.info("leaderboard from %d records: %d rows (%s) -> %s", n, len(table),
             ", ".join(f"{int(c)} {k}" for k, c in kinds.items()), ", ".join(str(out / k) for k in outputs))
    return 0
