"""`glip-bench claims`: pretrain every fusion variant from each pretraining seed, run the few-shot grid and
the side studies (forgetting, self-training) on each, train the supervised baseline, and write the claims
table. Resumable: pretrained weights are cached by the hash of what made them, finished runs are skipped,
and the side studies are reused while their inputs are unchanged, so a rerun only does what is missing.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from bench.studies.claims.plan import SUPERVISED_TASK, ClaimsPlan, get_plan, plan_dict
from bench.studies.demo import FUSIONS, PRESET, DemoPlan, _rel
from bench.util.io import atomic_write_json, atomic_write_text
from bench.util.logs import get_logger

log = get_logger("claims")


# ------------------------------------------------------------------------------------------ specs
def study_specs(plan: ClaimsPlan, checkpoints: dict[tuple[int, str], Path]) -> list:
    """Zero-shot tasks and the few-shot grid on every (pretraining seed, fusion) checkpoint, and the
    supervised baseline (no checkpoint: random init) on the few-shot task's whole training split."""
    from bench.studies.demo import demo_specs

    specs = []
    for (_, fusion), ckpt in sorted(checkpoints.items()):
        specs += demo_specs(plan.demo, {fusion: ckpt}, plan.zero_shot_tasks)
    specs += supervised_specs(plan)
    return specs


def supervised_specs(plan: ClaimsPlan) -> list:
    from bench.runs.spec import expand_grid

    over = {"infer_batch_size": plan.demo.infer_batch_size, **plan.supervised_overrides}
    # shots None: the whole training split
    return expand_grid(models=[PRESET], tasks=[SUPERVISED_TASK], regimes=["full-ft"], shots=[None],
                       seeds=list(plan.supervised_seeds), overrides=over, checkpoint=None)


# ------------------------------------------------------------------------------------ side studies
def _forgetting(pretrain_seed: int, records: list[dict], data_root: Path, out: Path, demo: DemoPlan) -> list[dict]:
    """bench.studies.demo_extras.forgetting on one pretraining seed's runs, reused while they are unchanged."""
    import pandas as pd

    from bench.studies.demo import BASE_TASK, _record_inputs
    from bench.studies.demo_extras import forgetting
    from bench.studies.stage_cache import cached_stage
    from bench.tasks.registry import get_task
    from bench.util.provenance import file_sha256

    task = get_task(BASE_TASK)
    inputs = {"stage": "forgetting", "pretrain_seed": pretrain_seed, "base_task": BASE_TASK,
              "task_version": task.version, "ann_sha256": file_sha256(task.ann_path(task.eval_split, data_root)),
              "infer_batch_size": demo.infer_batch_size, "runs": _record_inputs(records)}
    table, _ = cached_stage(out / "cache" / f"forgetting-pretrain{pretrain_seed}.json", inputs,
                            lambda: forgetting(records, data_root, out, demo.infer_batch_size),
                            lambda t: t.to_dict(orient="records"), pd.DataFrame)
    return [{"pretrain_seed": pretrain_seed, **row} for row in table.to_dict(orient="records")]


def _selftrain(pretrain_seed: int, teacher: Path, data_root: Path, out: Path, demo: DemoPlan) -> list[dict]:
    """The self-training experiment with this pretraining seed's deep-fusion model as the teacher."""
    from bench.studies.demo import selftrain_stage

    result, _ = selftrain_stage(teacher, data_root, out / "studies" / f"pretrain-{pretrain_seed}", demo)
    return [{"pretrain_seed": pretrain_seed, **row} for row in result["rows"]]


def _side_worker(args: tuple) -> tuple[list[dict], list[dict]]:
    from bench.studies.demo import _worker_setup

    pretrain_seed, records, teacher, data_root, out, demo = args
    _worker_setup()
    return (_forgetting(pretrain_seed, records, data_root, out, demo),
            _selftrain(pretrain_seed, teacher, data_root, out, demo))


def side_studies(plan: ClaimsPlan, records: list[dict], checkpoints: dict[tuple[int, str], Path], data_root: Path,
                 out: Path) -> tuple[list[dict], list[dict]]:
    """(forgetting rows, self-training rows) of every pretraining seed, each row with its pretrain_seed."""
    from bench.studies.demo import pool_map

    jobs = []
    for seed in plan.pretrain_seeds:
        own = {_rel(checkpoints[(seed, f)]) for f in FUSIONS}
        mine = [r for r in records if r["spec"]["checkpoint"] in own]
        jobs.append((seed, mine, checkpoints[(seed, "deep")], data_root, out, plan.demo))
    workers = min(plan.demo.workers, len(jobs))
    results = pool_map(_side_worker, jobs, workers) if workers > 1 else [_side_worker(j) for j in jobs]
    return [r for f, _ in results for r in f], [r for _, s in results for r in s]


# ------------------------------------------------------------------------------------------ main
def pretrain_all(plan: ClaimsPlan, data_root: Path, models_dir: Path) -> dict[tuple[int, str], Path]:
    """Every (pretraining seed, fusion) model, in parallel processes; cached weights are reused."""
    from bench.studies.demo import _pretrain_worker, pool_map, pretrained_checkpoint

    keys = [(seed, f) for seed in plan.pretrain_seeds for f in FUSIONS]
    jobs = [(f, plan.demo, data_root, models_dir, plan.world_seed, seed) for seed, f in keys]
    if plan.demo.workers > 1:
        paths = pool_map(_pretrain_worker, jobs, min(plan.demo.workers, len(jobs)))
    else:
        paths = [str(pretrained_checkpoint(*j)) for j in jobs]
    return {k: Path(p) for k, p in zip(keys, paths)}


def run_claims(out: str | Path = "results/claims", quick: bool = False, pretrain_seeds: tuple[int, ...] | None = None,
               workers: int | None = None, threads: int = 1, command: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the study into `out` and write the claims table; returns the summary."""
    import torch

    import bench.runs.train  # noqa: F401  (mmengine's first import writes a cache: once, before the workers)
    from bench.studies.claims.figure import plot_claims
    from bench.studies.claims.table import build_table, table_markdown
    from bench.studies.demo import prune_superseded_runs, run_specs
    from bench.synthetic import generate

    torch.set_num_threads(threads)
    plan = get_plan(quick, pretrain_seeds, workers)
    out = Path(out)
    data_root = out / "data"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if command is not None:
        atomic_write_text(out / "COMMAND.txt", shlex.join(command) + "\n")
    atomic_write_json(out / "plan.json", plan_dict(plan))

    log.info("1/5 generating the synthetic world into %s", _rel(data_root))
    generate(data_root, seed=plan.world_seed, scale=plan.demo.scale)
    timings["generate"] = time.perf_counter() - t0

    n_models = len(plan.pretrain_seeds) * len(FUSIONS)
    log.info("2/5 pretraining %s: %d models (%s fusion x pretraining seeds %s)", PRESET, n_models,
             "/".join(FUSIONS), ",".join(map(str, plan.pretrain_seeds)))
    t = time.perf_counter()
    from bench.studies.demo import checkpoint_path

    reused = {"models": sum(checkpoint_path(f, plan.demo, out / "models", plan.world_seed, seed)[0].is_file()
                            for seed in plan.pretrain_seeds for f in FUSIONS), "of_models": n_models}
    checkpoints = pretrain_all(plan, data_root, out / "models")
    timings["pretrain"] = time.perf_counter() - t

    log.info("3/5 zero-shot, the few-shot grid on every model, and the supervised baseline")
    t = time.perf_counter()
    specs = study_specs(plan, checkpoints)
    from bench.results import store

    reused |= {"runs": sum(store.finished_record(out, s) is not None for s in specs), "of_runs": len(specs)}
    prune_superseded_runs(out, specs)
    records = run_specs(specs, data_root, out, plan.demo.workers)
    timings["runs"] = time.perf_counter() - t

    log.info("4/5 forgetting and self-training on every pretraining seed")
    t = time.perf_counter()
    forgetting_rows, selftrain_rows = side_studies(plan, records, checkpoints, data_root, out)
    timings["side_studies"] = time.perf_counter() - t

    log.info("5/5 the claims table")
    import pandas as pd

    atomic_write_text(out / "forgetting.csv", pd.DataFrame(forgetting_rows).to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out / "selftrain.csv", pd.DataFrame(selftrain_rows).to_csv(index=False, lineterminator="\n"))
    table = build_table(records, forgetting_rows, selftrain_rows, plan)
    atomic_write_text(out / "claims.csv", table.to_csv(index=False, lineterminator="\n"))
    plot_claims(table, out / "claims.png")
    timings["total"] = time.perf_counter() - t0
    markdown = table_markdown(table, plan, timings, reused)
    atomic_write_text(out / "CLAIMS.md", markdown)
    summary = {"timings": timings, "reused": reused, "claims": table.to_dict(orient="records"), "runs": len(records),
               "models": n_models, "plan": plan_dict(plan)}
    atomic_write_json(out / "summary.json", summary)
    print(markdown)
    return summary


__all__ = ["pretrain_all", "run_claims", "side_studies", "study_specs", "supervised_specs"]
