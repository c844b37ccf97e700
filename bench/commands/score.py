"""`glip-bench score`: recompute metrics from saved predictions (no inference) and update the records."""

from __future__ import annotations

import argparse

from bench.util.errors import UserError

HELP = "recompute a run's (or every run's) metrics from its saved predictions, without inference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", default=None, help="one run folder (holding record.json and predictions)")
    where.add_argument("--results", default=None, help="every run folder under this results folder")
    parser.add_argument("--data-root", default=None, help="data root (default: $GLIP_BENCH_DATA, else ./data)")
    parser.add_argument("--metric-backend", default=None, choices=["faster", "pycocotools", "lvis"],
                        help="metric implementation (default: the one each record was made with)")


def main(args: argparse.Namespace) -> int:
    import json
    import math
    from pathlib import Path

    from bench.results import store
    from bench.runs.runner import rescore_run

    if args.run is not None:
        folders = [Path(args.run)]
        if not (folders[0] / store.RECORD).is_file():
            raise UserError(f"{args.run} is not a run folder: no {store.RECORD} in it")
    else:
        folders = list(store.iter_run_dirs(args.results))
        if not folders:
            raise UserError(f"no run folders (with {store.RECORD}) under {args.results}")
    changed, failed = 0, []
    for folder in folders:
        before = store.load_record(folder / store.RECORD)
        try:
            record = rescore_run(folder, args.data_root, args.metric_backend)
        except UserError as err:  # this run's record stays as it was; the others are still rescored
            failed.append(str(err) if folder.name in str(err) else f"{folder.name}: {err}")
            print(f"{folder.name}: FAILED")
            continue
        same = before is not None and json.dumps(before["metrics"]) == json.dumps(record["metrics"])
        changed += not same
        m = record["metrics"]
        v = m["values"][m["primary"]]
        print(f"{folder.name}: {m['primary']} {'nan' if math.isnan(v) else f'{v:.2f}'}"
              f"{'' if same else ' (changed)'}")
    print(f"rescored {len(folders) - len(failed)} runs, {changed} changed")
    if failed:
        raise UserError(f"{len(failed)} of {len(folders)} runs could not be rescored (their records are "
                        "unchanged):\n  " + "\n  ".join(failed))
    return 0
