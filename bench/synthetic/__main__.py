"""python -m bench.synthetic [--data-root DIR] [--seed N] [--scale S|quick] [--tasks a,b]: write the world."""

from __future__ import annotations

import argparse
import os

from bench.synthetic import TASKS, generate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__)
    p.add_argument("--data-root", default=os.environ.get("GLIP_BENCH_DATA", "data"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", default="1.0", help="size factor, or 'quick'")
    p.add_argument("--tasks", default=None, help=f"comma-separated subset of: {', '.join(TASKS)}")
    args = p.parse_args(argv)
    scale = args.scale if args.scale == "quick" else float(args.scale)
    tasks = args.tasks.split(",") if args.tasks else None
    out = generate(args.data_root, seed=args.seed, scale=scale, tasks=tasks)
    for name, t in out["tasks"].items():
        state = "skipped (up to date)" if t["skipped"] else "written"
        print(f"{name:20s} {t['images']:6d} images  {t['seconds']:6.2f} s  {state}")
    print(f"total {out['seconds']:.2f} s ({out['cpu_seconds']:.2f} s CPU) under {out['data_root']}/synthetic")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
