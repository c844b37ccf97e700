"""Grids of runs: each spec run once (or skipped when finished), resumable, shardable, claimable.

    specs = expand_grid(models=["glip-synth"], tasks="synth-shapes", regimes=["zero-shot", "full-ft"],
                        shots=[1, 5], seeds=[3, 30], overrides={"max_epochs": 2})   # bench.runs.spec
    records = run_grid(specs, RunContext(data_root=data_root, results_dir=results_dir, device="cpu"))

A finished run (valid record with the same spec hash) is skipped when a sweep is rerun; anything else is
redone from scratch, so a sweep killed at any point and rerun ends with the same records. `--shard i/N`
takes every N-th spec of the grid sorted by spec hash, so N jobs can share one results folder without
overlap; within one folder, a claim (bench.results.store.claim) keeps two processes off the same run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import Timeout

from bench.dist import comm as dist
from bench.results import store
from bench.results.records import Metrics, RunSpec
from bench.runs.scoring import DEFAULT_BACKEND, score_saved
from bench.runs.spec import RunContext, check_world, resolve, shard_specs, validate_specs
from bench.runs.stages import now, run_one
from bench.tasks.registry import get_task
from bench.util.errors import UserError
from bench.util.io import user_write
from bench.util.logs import get_logger, progress

log = get_logger("runner")


# ------------------------------------------------------------------------------------- grids
def run_grid(specs: Sequence[RunSpec], ctx: RunContext, *, rescore: bool = False,
             shard: tuple[int, int] | None = None, validate: bool = True) -> list[dict[str, Any]]:
    """Run (or skip, when finished) every spec of this shard; returns the records in spec-hash order.

    rescore: recompute the metrics of finished runs from their saved predictions (no inference), and
    refuse specs that have not run yet.
    Under torchrun every process walks the same list (rank 0 decides what is finished and tells the
    others), each run's split is predicted data-parallel, and only rank 0 gets the records (the other
    ranks get an empty list).
    """
    specs = shard_specs(specs, *shard) if shard else sorted(specs, key=lambda s: s.hash)
    results_dir = ctx.results_dir
    if validate:
        runs = validate_specs(specs, ctx.data_root, text_encoder=ctx.text_encoder)
    else:
        runs = [resolve(s, ctx.data_root, check_data=False) for s in specs]
    main = dist.is_main()
    if rescore:
        missing = [s.run_name for s in specs if store.finished_record(results_dir, s) is None]
        if missing:
            raise UserError(f"--rescore needs finished runs; {len(missing)} have no valid record with its predictions, "
                            f"e.g. {missing[0]}")
        # no inference: rank 0 rescores, the others only wait for it
        records = ([rescore_run(store.run_dir(results_dir, s), ctx.data_root, ctx.metric_backend) for s in specs]
                   if main else [])
        dist.barrier()
        return records
    check_world(runs)
    records: dict[str, dict[str, Any]] = {}
    if main:  # what is done and what is not, in two lines instead of one per run
        why: list[str] = []
        finished = sum(store.finished_record(results_dir, s, why) is not None for s in specs)
        log.info("%d of %d runs already finished (reused), %d to run", finished, len(specs), len(specs) - finished)
        if store.unfinished_summary(why, len(specs)):
            log.info("%s", store.unfinished_summary(why, len(specs)))
    busy = list(runs)
    # first pass: every run nobody else holds; second: wait for the runs another process was computing
    for wait in (False, True):
        walk, busy = busy, []
        bar = walk
        if main and not wait:
            bar = progress(walk, desc="runs" if shard is None else f"runs {shard[0] + 1}/{shard[1]}", total=len(walk),
                           leave=True, position=None if shard is None else shard[0])
        for run in bar:
            spec = run.spec
            decision, lock = _claim_decision(results_dir, spec, wait) if main else (None, None)
            decision = dist.broadcast_object(decision)  # one decision, so every rank walks the same runs
            if decision == "busy":
                busy.append(run)
                continue
            if decision == "done":
                if main:
                    records[spec.hash] = store.finished_record(results_dir, spec)
                continue
            try:
                record = run_one(run, ctx)
            finally:
                if lock is not None:
                    lock.release()
            if record is not None:
                records[spec.hash] = record
    dist.barrier()  # nobody leaves (and tears the process group down) while rank 0 still scores
    return [records[s.hash] for s in specs if s.hash in records]


def _claim_decision(results_dir: str | Path, spec: RunSpec, wait: bool) -> tuple[str, Any]:
    """("done" | "busy" | "run", the held claim for "run"): whether this process computes `spec` now."""
    if store.finished_record(results_dir, spec) is not None:
        log.debug("skip %s (finished)", spec.run_name)
        return "done", None
    lock = store.claim(results_dir, spec)
    try:
        with user_write(lock.lock_file):  # a read-only results folder fails here first
            lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        log.info("later: %s (another process is computing it)", spec.run_name)
        return "busy", None
    if store.finished_record(results_dir, spec) is not None:  # finished by the holder we waited for
        lock.release()
        log.info("skip %s (finished by another process)", spec.run_name)
        return "done", None
    return "run", lock


def rescore_run(folder: str | Path, data_root: str | Path | None = None, metric_backend: str | None = None
                ) -> dict[str, Any]:
    """Recompute a finished run's metrics from its saved predictions and rewrite its record atomically."""
    folder = Path(folder)
    record = store.load_record(folder / store.RECORD)
    if record is None:
        raise UserError(f"{folder} holds no valid record.json to rescore")
    spec = RunSpec.from_dict(record["spec"])
    task = get_task(spec.task)
    backend = metric_backend or record["provenance"].get("metric_backend") or DEFAULT_BACKEND
    dataset = task.load(record["task"]["split"], data_root)
    result = score_saved(task, dataset, folder, backend)
    record["metrics"] = dataclasses.asdict(Metrics.from_result(result))
    record["provenance"]["metric_backend"] = backend
    record["rescored_at"] = now()
    store.write_record(folder, record)
    return record
