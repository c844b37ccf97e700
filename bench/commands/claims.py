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
    parser.add_argument("--plan", choices=("synthetic", "paper"), default="synthetic",
                        help="synthetic: the study on the synthetic world (default); paper: the released GLIP-T "
                             "checkpoints on COCO and ODinW-13 (needs --data-root; lists what is missing first)")
    parser.add_argument("--data-root", default=None,
                        help="--plan paper: the data root holding coco/, odinw/ and checkpoints/")
    parser.add_argument("--device", default="cpu", help="--plan paper: the device the runs use")
    parser.add_argument("--out", default=None, help="results folder of the study (default results/claims, "
                                                    "results/claims-paper with --plan paper)")
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
    if args.plan == "paper":
        return _paper(args)
    args.out = args.out or "results/claims"
    plan = get_plan(args.quick, args.pretrain_seeds, args.workers)
    if args.show_plan:
        print(json.dumps(plan_dict(plan), indent=2))
        return 0
    from bench.studies.claims.run import run_claims

    run_claims(out=args.out, quick=args.quick, pretrain_seeds=args.pretrain_seeds, workers=args.workers,
               threads=args.threads, command=["glip-bench", "claims", *command_options(args)])
    return 0


def _paper(args: argparse.Namespace) -> int:
    """The paper plan: refuse (rc 2) listing every missing file, else run it and write its claims table."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from bench.studies.claims.paper import PAPER, check_plan, run_paper
    from bench.util.errors import UserError

    if args.quick or args.pretrain_seeds is not None:
        raise UserError("--quick and --pretrain-seeds belong to the synthetic plan; the paper plan runs the "
                        "released checkpoints")
    if args.show_plan:
        print(json.dumps(asdict(PAPER), indent=2, default=str))
        return 0
    if args.data_root is None:
        raise UserError("--plan paper needs --data-root D (holding coco/, odinw/ and checkpoints/)")
    check_plan(PAPER, Path(args.data_root))
    run_paper(PAPER, args.data_root, args.out or "results/claims-paper", device=args.device)
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
