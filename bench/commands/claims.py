"""`glip-bench claims`: the paper's claims as experiments over several pretraining seeds (results/claims/)."""

from __future__ import annotations

import argparse

HELP = "pretrain each fusion variant from several seeds, run the few-shot grid on each, write the claims table"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/claims", help="results folder of the study")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny budget for every stage (a check that everything runs, not a measurement)")
    parser.add_argument("--pretrain-seeds", type=_seeds, default=None, metavar="S1,S2,...",
                        help="pretraining seeds per fusion variant (default: the plan's, 0,1,2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for pretraining, the run grid and the side studies (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--show-plan", action="store_true", help="print the budgets and grids, run nothing")


def main(args: argparse.Namespace) -> int:
    import json

    from bench.util.cpu_kernels import pin_cpu_kernels

    pin_cpu_kernels()  # before torch's first kernel, so the committed numbers do not follow the CPU's vector unit

    from bench.studies.claims.plan import get_plan, plan_dict
    from bench.util.errors import UserError

    if args.threads < 1:
        raise UserError(f"--threads must be at least 1 (got {args.threads})")
    plan = get_plan(args.quick, args.pretrain_seeds, args.workers)
    if args.show_plan:
        print(json.dumps(plan_dict(plan), indent=2))
        return 0
    from bench.studies.claims.run import run_claims

    run_claims(out=args.out, quick=args.quick, pretrain_seeds=args.pretrain_seeds, workers=args.workers,
               threads=args.threads, command=["glip-bench", "claims", *command_options(args)])
    return 0


def command_options(args: argparse.Namespace) -> list[str]:
    """The options that made the study, for its COMMAND.txt (the same whether started by nox, glip-bench
    or python -m bench)."""
    out = ["--out", args.out]
    if args.quick:
        out.append("--quick")
    if args.pretrain_seeds is not None:
        out += ["--pretrain-seeds", ",".join(map(str, args.pretrain_seeds))]
    if args.workers is not None:
        out += ["--workers", str(args.workers)]
    if args.threads != 1:
        out += ["--threads", str(args.threads)]
    return out
