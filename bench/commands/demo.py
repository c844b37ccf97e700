"""`glip-bench demo`: the built-in synthetic suite end to end (generate, pretrain, zero-/few-shot, reports)."""

from __future__ import annotations

import argparse

HELP = "run the built-in synthetic suite end to end into results/demo/ (the main job on a fresh machine)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/demo", help="results folder of the demo")
    parser.add_argument("--quick", action="store_true", help="a reduced version of every stage (about 3 minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic world and of pretraining")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for pretraining and the run grid (default 2, one torch thread each)")
    parser.add_argument("--data-root", default=None, help="where the synthetic data go (default: the default data root, $GLIP_BENCH_DATA or "
                             "./data, where `glip-bench tasks` and `run` look; with --quick <out>/data)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the main process (results reproduce bit for bit at the same count)")
    parser.add_argument("--reference", default=None,
                        help="committed records to compare the fresh ones with (default: results/demo, "
                             "with --quick results/demo-quick)")
    parser.add_argument("--show-plan", action="store_true", help="print the stages' budgets and grids, run nothing")


def main(args: argparse.Namespace) -> int:
    from bench.util.cpu_kernels import pin_cpu_kernels

    pin_cpu_kernels()  # before torch's first kernel, so the committed numbers do not follow the CPU's vector unit
    from bench.studies.demo import plan_json, run_demo
    from bench.util.errors import UserError

    if args.threads < 1:
        raise UserError(f"--threads must be at least 1 (got {args.threads})")

    if args.show_plan:
        print(plan_json(args.quick))
        return 0
    run_demo(out=args.out, quick=args.quick, seed=args.seed, workers=args.workers, data_root=args.data_root,
             threads=args.threads, reference=args.reference)
    return 0
