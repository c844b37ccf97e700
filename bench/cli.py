"""The `glip-bench` command line. Each subcommand lives in `bench/commands/<name>.py` and exposes
`HELP` (one line), `add_arguments(parser)` and `main(args) -> int`. Command modules keep heavy
imports (torch, pandas) inside `main`, so `--help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bench.util.errors import UserError
from bench.util.io import MAX_READ_ENV, parse_size
from bench.util.logs import get_logger, setup_logging

# subcommand -> module under bench.commands
COMMANDS = {
    "tasks": "tasks",
    "run": "run",
    "score": "score",
    "predict": "predict",
    "convert-checkpoint": "convert_checkpoint",
    "leaderboard": "leaderboard",
    "curves": "curves",
    "ablation": "ablation",
    "demo": "demo",
    "claims": "claims",
    "pseudo-label": "pseudo_label",
    "fetch": "fetch",
}


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help does not state its default itself and there is one to show
    (None, False and [] mean "not given", and a help that explains its default says more than the value)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glip-bench",
        description="Benchmark GLIP-style grounded detectors: tasks x regimes -> records -> tables and curves.",
    )
    parser.add_argument("--log-level", default=os.environ.get("GLIP_BENCH_LOG", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity (default INFO)")
    parser.add_argument("--tasks-dir", default=None, metavar="DIR",
                        help="also read task YAMLs from DIR, beside the shipped tasks (default: $GLIP_BENCH_TASKS)")
    parser.add_argument("--max-read", default=None, metavar="SIZE",
                        help="largest predictions / annotation file read, after decompression (e.g. 64G; "
                             "default: $GLIP_BENCH_MAX_READ, else 32G)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"bench.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=_DefaultsFormatter)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "fetch":  # fetch is the one command that goes online (building the parser imports no hub)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    setup_logging(args.log_level)
    if args.tasks_dir is not None:  # through the environment, so worker and torchrun processes see it too
        os.environ["GLIP_BENCH_TASKS"] = args.tasks_dir
    try:
        if args.max_read is not None:
            os.environ[MAX_READ_ENV] = str(parse_size(args.max_read, "--max-read"))
        return int(args._main(args) or 0)
    except UserError as e:
        get_logger().error("%s", e)
        return 2
    except KeyboardInterrupt:
        get_logger().error("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
