"""The main job on a fresh machine: the built-in synthetic suite, end to end, into one results folder.

    generate data -> pretrain glip-synth (deep and late fusion, cached by config hash)
      -> zero-shot on the suite -> few-shot 1/3/5/10 x 3 seeds (prompt tuning, linear probe, full ft)
      -> forgetting of base concepts -> self-training -> leaderboard, cost curves, fusion ablation

Every stage goes through the same code a real benchmark uses (the task registry, bench.runs.runner,
bench.reports), so the demo doubles as the integration test of the whole harness. The plan (budgets,
grids) is data: `PLANS["full"]` and `PLANS["quick"]`; nothing else differs between them.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.util.io import atomic_write_json, atomic_write_text, sha256_json
from bench.util.logs import get_logger

log = get_logger("demo")

PRESET = "glip-synth"
FUSIONS = ("deep", "late")
ZERO_SHOT_TASKS = ("synth-shapes", "synth-colours", "synth-compositions", "synth-novel", "synth-crowded",
                   "synth-grounding", "synth-lvis")
BASE_TASK = "synth-colours"  # seen concepts: the forgetting probe after fine-tuning on novel shapes


@dataclass(frozen=True)
class DemoPlan:
    """Budgets and grids of one demo flavour."""

    scale: float | str  # synthetic world size (bench.synthetic.generate)
    pretrain_iters: int
    pretrain_batch: int
    pretrain_lr: float
    # the text encoder learns from scratch too; at the full lr (1e-3) late fusion's BERT collapsed (class words'
    # outputs at cosine 0.97) and stalled, while 1e-4 let both fusions learn (measured: see README)
    pretrain_lang_lr: float
    fewshot_tasks: tuple[str, ...]
    shots: tuple[int, ...]
    seeds: tuple[int, ...]
    regimes: dict[str, tuple[str, ...]]  # fusion -> training regimes run for it
    # the few-shot budget as the official recipe scales it (README --custom_shot_and_epoch_and_general_copy
    # 1_200_8 ... 10_200_1): the same number of epochs for every shot count, each epoch the k-shot images x
    # GENERAL_COPY (8/4/2/1, resolved per shot: bench.runs.hparams.resolve_hparams); no iteration cap
    fewshot_epochs: int = 1
    # regime settings: "*" for every training regime, then per regime (bench/runs/regimes.py names); never
    # max_iters / max_epochs (the budget is fewshot_epochs: `fewshot_overrides` refuses them)
    train_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # parameter groups at pretrain_lang_lr: the head's text-side layers too; at the full LR their fresh BERT layers
    # pulled every word's feature together (deep fusion: class words at cosine 0.985) and synth-shapes sat at 13.6
    # AP after 900 steps (62.1 with this)
    pretrain_lang_lr_groups: tuple[str, ...] = ("language", "fusion")
    # share of the pretraining steps over which the LR falls linearly to 0.1x (bench.runs.train.final_decay): a 1200-step
    # late-fusion run went 55.6 -> 63.0 AP on synth-colours against a constant LR
    pretrain_final_decay: float = 0.25
    infer_batch_size: int = 8  # every synthetic image is 128x128: no padding, so batching changes nothing
    selftrain_budget: str = "full"  # bench.studies.selftrain.experiment budget name
    workers: int = 2  # processes for the run grid (one torch thread each)


# The official fine-tuning LRs (1e-4, language 1e-5) suit a large pretrained model and thousands of steps;
# the small world gets tens of steps, and the novel shapes' word embeddings were never trained, so the
# demo raises them (prompt tuning keeps its official 0.05). Evaluation on the few-shot val split is off:
# the budget is a fixed number of steps.
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {
    "full-ft": {"lr": 1e-3, "lang_lr": 1e-3},
    "linear-probe": {"lr": 1e-3},
}

PLANS: dict[str, DemoPlan] = {
    "full": DemoPlan(
        scale=1.0, pretrain_iters=1200, pretrain_batch=8, pretrain_lr=1e-3, pretrain_lang_lr=1e-4,
        fewshot_tasks=("synth-novel",), shots=(1, 3, 5, 10), seeds=(3, 30, 300),
        regimes={"deep": ("prompt-tuning", "linear-probe", "full-ft"), "late": ("prompt-tuning", "full-ft")},
        # 10 epochs (the official 200 / 20): a 1-shot run's 2 images x 8 copies x 10 = 160 images, as the former
        # 40-step cap gave; the 3/5/10-shot runs now see 280/220/210 instead of 160/160/142
        fewshot_epochs=10,
        train_overrides=TRAIN_OVERRIDES | {"*": {"eval_every": 0, "batch_size": 4}},
    ),
    "quick": DemoPlan(
        scale="quick", pretrain_iters=40, pretrain_batch=8, pretrain_lr=1e-3, pretrain_lang_lr=1e-4,
        fewshot_tasks=("synth-novel",), shots=(1, 10), seeds=(3,),
        regimes={"deep": ("prompt-tuning", "linear-probe", "full-ft"), "late": ("prompt-tuning", "full-ft")},
        fewshot_epochs=2,
        train_overrides=TRAIN_OVERRIDES | {"*": {"eval_every": 0, "batch_size": 4}},
        selftrain_budget="quick",
    ),
}


# the committed records each plan's fresh records are compared with (paths from the repository root)
REFERENCES = {"full": "results/demo", "quick": "results/demo-quick"}


def demo_data_root(out: Path, quick: bool, data_root: str | Path | None = None) -> Path:
    """Where the demo writes its world: the full demo into the default data root ($GLIP_BENCH_DATA, else
    ./data), where `glip-bench tasks` and `run` look after it; the quick check into <out>/data."""
    from bench.tasks.task import resolve_data_root

    if data_root is not None:
        return Path(data_root)
    return Path(out) / "data" if quick else resolve_data_root()


def _rel(path: Path) -> str:
    """Paths stored in specs and records are relative to the working directory (no machine paths)."""
    return os.path.relpath(path)


# ----------------------------------------------------------------------------------- pretraining
def checkpoint_path(fusion: str, plan: DemoPlan, models_dir: Path, seed: int,
                    pretrain_seed: int | None = None) -> tuple[Path, dict[str, Any]]:
    """Where the pretrained weights of this fusion and plan live (named by the hash of what made them).

    seed: the synthetic world's; pretrain_seed: the training run's (init and data order), by default the
    same. It enters the hash only when it differs, so weights made with one seed for both keep their name.
    """
    from bench.synthetic.generate import GENERATOR_VERSION
    from glip.config import get_preset

    key = {"config": asdict(get_preset(PRESET, fusion=fusion)), "iters": plan.pretrain_iters,
           "batch": plan.pretrain_batch, "lr": plan.pretrain_lr, "lang_lr": plan.pretrain_lang_lr,
           "lang_lr_groups": list(plan.pretrain_lang_lr_groups), "final_decay": plan.pretrain_final_decay,
           "scale": plan.scale, "generator_version": GENERATOR_VERSION, "seed": seed}
    if pretrain_seed is not None and pretrain_seed != seed:
        key["pretrain_seed"] = pretrain_seed
    return models_dir / f"{PRESET}-{fusion}-{sha256_json(key)[:12]}.safetensors", key


def pretrained_checkpoint(fusion: str, plan: DemoPlan, data_root: Path, models_dir: Path, seed: int,
                          pretrain_seed: int | None = None) -> Path:
    """Pretrain glip-synth with this fusion on the base concepts, or reuse the cached weights (same config hash).

    The metadata beside the weights (<name>.json) names the pretraining seed (`pretrain_seed`), which every
    record made from them carries in its provenance (bench.util.provenance.checkpoint_pretrain_seed).
    """
    import glip
    from bench.runs.train import pretrain, save_adapter
    from bench.synthetic.generate import pretraining_paths

    pretrain_seed = seed if pretrain_seed is None else pretrain_seed
    cfg = glip.get_preset(PRESET, fusion=fusion)
    path, key = checkpoint_path(fusion, plan, models_dir, seed, pretrain_seed)
    if path.is_file():
        log.info("pretrained %s (%s fusion) found in the cache: %s", PRESET, fusion, _rel(path))
        return path
    import torch

    torch.manual_seed(pretrain_seed)
    model = glip.from_pretrained(cfg)
    ann, images = pretraining_paths(data_root)
    log.info("pretraining %s (%s fusion) for %d iterations of %d images", PRESET, fusion, plan.pretrain_iters,
             plan.pretrain_batch)
    # from scratch: the official 1e-5 language LR is for a pretrained BERT (see DemoPlan.pretrain_lang_lr)
    res = pretrain(model, [ann], [images], max_iters=plan.pretrain_iters, max_epochs=10_000, seed=pretrain_seed,
                   batch_size=plan.pretrain_batch, lr=plan.pretrain_lr, lang_lr=plan.pretrain_lang_lr,
                   lang_lr_groups=plan.pretrain_lang_lr_groups, final_decay=plan.pretrain_final_decay, eval_every=0,
                   progress=(f"pretrain {fusion}", FUSIONS.index(fusion)))
    save_adapter(model, path)
    atomic_write_json(path.with_suffix(".json"), {**key, "pretrain_seed": pretrain_seed, "result": res.to_dict()})
    losses = res.epoch_losses  # one entry per epoch; a step-limited run may be a single epoch
    log.info("pretrained %s fusion in %.0f s (mean loss per epoch: %s)", fusion, res.train_seconds,
             " -> ".join(f"{x:.3f}" for x in (losses[:1] + losses[-1:] if len(losses) > 1 else losses)))
    return path


def prune_superseded_runs(out: Path, specs: list) -> list[str]:
    """Remove run folders under out/runs that this plan does not make (an earlier demo's models or grid),
    so the leaderboard and curves show this demo only. Logged by name; git history keeps committed ones."""
    import shutil

    keep = {s.run_name for s in specs}
    runs = out / "runs"
    stale = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name not in keep) if runs.is_dir() else []
    for name in stale:
        shutil.rmtree(runs / name)
    if stale:
        log.info("removed %d runs of an earlier demo (superseded models or grid), e.g. %s", len(stale), stale[0])
    return stale


def _worker_setup() -> None:
    """A spawned worker starts bare: one torch thread (one process per core) and the parent's log format."""
    import torch

    from bench.util.logs import setup_logging

    torch.set_num_threads(1)
    setup_logging(os.environ.get("GLIP_BENCH_LOG", "INFO"))


def pool_map(fn: Any, jobs: list, processes: int) -> list:
    """fn over jobs in spawned processes that exit normally: leaving the Pool's `with` block terminates its
    workers, whose progress-bar locks (multiprocessing semaphores) are then reported as leaked at exit."""
    with mp.get_context("spawn").Pool(processes) as pool:
        results = pool.map(fn, jobs)
        pool.close()
        pool.join()
    return results


def _pretrain_worker(args: tuple) -> str:
    _worker_setup()
    return str(pretrained_checkpoint(*args))


# ------------------------------------------------------------------------------------ run grids
def demo_specs(plan: DemoPlan, checkpoints: dict[str, Path], zero_shot_tasks: Sequence[str] = ZERO_SHOT_TASKS
               ) -> list:
    """Zero-shot on `zero_shot_tasks` for each fusion's checkpoint, then the few-shot grid of its regimes."""
    from bench.runs.spec import expand_grid

    specs = []
    for fusion, ckpt in checkpoints.items():
        over = {"fusion": fusion, "infer_batch_size": plan.infer_batch_size}
        specs += expand_grid(models=[PRESET], tasks=list(zero_shot_tasks), regimes=["zero-shot"], shots=None,
                             seeds=None, overrides=over, checkpoint=_rel(ckpt))
        for regime in plan.regimes[fusion]:
            regime_over = fewshot_overrides(plan, regime)
            specs += expand_grid(models=[PRESET], tasks=list(plan.fewshot_tasks), regimes=[regime],
                                 shots=list(plan.shots), seeds=list(plan.seeds), checkpoint=_rel(ckpt),
                                 overrides={**over, **regime_over})
    return specs


def fewshot_overrides(plan: DemoPlan, regime: str) -> dict[str, Any]:
    """A few-shot regime's settings: "*" then the regime's own, and the budget as epochs (x the per-shot copy)."""
    over = {**plan.train_overrides.get("*", {}), **plan.train_overrides.get(regime, {})}
    capped = sorted({"max_iters", "max_epochs"} & set(over))
    if capped:
        raise ValueError(f"demo plan: {regime} sets {capped}; the few-shot budget is fewshot_epochs x the per-shot "
                         "GENERAL_COPY, the same rule for every shot count")
    return {**over, "max_epochs": plan.fewshot_epochs}


def _grid_worker(args: tuple) -> int:
    from bench.runs.runner import run_grid
    from bench.runs.spec import RunContext

    specs, data_root, results_dir, shard = args
    _worker_setup()
    # num_workers=0: the demo already runs one process per core, and pool workers may not fork loaders
    ctx = RunContext(data_root=data_root, results_dir=results_dir, device="cpu", num_workers=0)
    return len(run_grid(specs, ctx, shard=shard, validate=False))


def run_specs(specs: list, data_root: Path, results_dir: Path, workers: int) -> list[dict]:
    """Run the grid in `workers` processes, each a disjoint shard (bench.runs.spec.shard_specs); finished runs skip."""
    from bench.results import store
    from bench.runs.spec import validate_specs

    validate_specs(specs, data_root)
    if workers <= 1:
        _grid_worker((specs, data_root, results_dir, None))
    else:
        pool_map(_grid_worker, [(specs, data_root, results_dir, (i, workers)) for i in range(workers)], workers)
    records = [store.finished_record(results_dir, s) for s in specs]
    missing = [s.run_name for s, r in zip(specs, records) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} demo runs left no record, e.g. {missing[0]}")
    return records


# ------------------------------------------------------------------- forgetting and self-training
def _record_inputs(records: list[dict]) -> list[list]:
    """What identifies the runs a stage reads: a rerun run gets a new start time (and new trained tensors)."""
    return sorted([r["spec_hash"], r.get("started_at"), r["provenance"].get("checkpoint_sha256")] for r in records)


def forgetting_stage(records: list[dict], data_root: Path, out: Path, plan: DemoPlan) -> tuple[Any, bool]:
    """bench.studies.demo_extras.forgetting, reused from out/cache when the runs and the base task are unchanged."""
    import pandas as pd

    from bench.studies.demo_extras import forgetting
    from bench.studies.stage_cache import cached_stage
    from bench.tasks.registry import get_task
    from bench.util.provenance import file_sha256

    task = get_task(BASE_TASK)
    inputs = {"stage": "forgetting", "base_task": BASE_TASK, "task_version": task.version,
              "ann_sha256": file_sha256(task.ann_path(task.eval_split, data_root)),
              "infer_batch_size": plan.infer_batch_size, "runs": _record_inputs(records)}
    table, reused = cached_stage(out / "cache" / "forgetting.json", inputs,
                                 lambda: forgetting(records, data_root, out, plan.infer_batch_size),
                                 lambda t: t.to_dict(orient="records"), pd.DataFrame)
    if reused:
        log.info("forgetting: reused (its runs and base task are unchanged): %s", _rel(out / "cache" / "forgetting.json"))
        if not table.empty:
            atomic_write_text(out / "forgetting.csv", table.to_csv(index=False, lineterminator="\n"))
    return table, reused


def selftrain_stage(teacher: Path, data_root: Path, out: Path, plan: DemoPlan) -> tuple[dict[str, Any], bool]:
    """bench.studies.selftrain.experiment.run_experiment, reused from out/cache when teacher, data and budget are unchanged."""
    import pandas as pd

    from bench.studies.selftrain.experiment import get_budget, run_experiment
    from bench.studies.stage_cache import cached_stage
    from bench.synthetic.generate import GENERATOR_VERSION, pretraining_paths
    from bench.util.provenance import file_sha256

    inputs = {"stage": "self-training", "preset": PRESET, "teacher_sha256": file_sha256(teacher),
              "budget": asdict(get_budget(plan.selftrain_budget)), "generator_version": GENERATOR_VERSION,
              "human_data_sha256": file_sha256(pretraining_paths(data_root)[0])}

    def compute() -> dict[str, Any]:
        return run_experiment(out / "selftrain", teacher_checkpoint=teacher, preset=PRESET,
                              budget=plan.selftrain_budget, data_root=data_root, work_dir=out / "selftrain" / "scratch")

    def dump(result: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in result.items() if k not in ("table", "summary", "figure")}
        return {**kept, "summary": result["summary"].to_dict(orient="records"), "figure": str(result["figure"])}

    def load(stored: dict[str, Any]) -> dict[str, Any]:
        return {**stored, "table": pd.DataFrame(stored["rows"]), "summary": pd.DataFrame(stored["summary"]),
                "figure": Path(stored["figure"])}

    result, reused = cached_stage(out / "cache" / "selftrain.json", inputs, compute, dump, load)
    if reused:
        log.info("self-training: reused (teacher, data and budget unchanged): %s", _rel(out / "cache" / "selftrain.json"))
    return result, reused


# ------------------------------------------------------------------------------------------ main
def run_demo(out: str | Path = "results/demo", quick: bool = False, seed: int = 0, workers: int | None = None,
             data_root: str | Path | None = None, threads: int = 1,
             reference: str | Path | None = None, pretrained: dict[str, Path] | None = None) -> dict[str, Any]:
    """Run every stage into `out`; returns the summary (also written to out/summary.json).

    `pretrained`: fusion -> weights to use instead of pretraining (the reproduction check evaluates and
    fine-tunes the committed quick-demo models this way: bench.studies.reproduce).

    `threads`: torch threads of this process (the workers use one each): a float sum's order follows the thread
    count, so a run reproduces bit for bit only at the same count. `reference`: the committed records the
    fresh ones are compared with at the end (default: REFERENCES of the plan); read before anything is written.
    """
    import torch

    from bench.results.compare import Reference

    torch.set_num_threads(threads)
    committed = Reference.load(reference or REFERENCES["quick" if quick else "full"])
    # mmengine imports yapf, which writes its grammar cache on the first import in a fresh environment:
    # import it here, once, before spawned workers race to write and read that cache (seen: EOFError)
    import bench.runs.train  # noqa: F401
    from bench.cli import main as cli
    from bench.synthetic import generate

    plan = PLANS["quick" if quick else "full"]
    if workers is not None:
        plan = replace(plan, workers=workers)
    out = Path(out)
    data_root = demo_data_root(out, quick, data_root)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    log.info("1/6 generating the synthetic world into %s", _rel(data_root))
    generate(data_root, seed=seed, scale=plan.scale)
    timings["generate"] = time.perf_counter() - t0

    log.info("2/6 pretraining %s with %s fusion", PRESET, " and ".join(FUSIONS))
    t = time.perf_counter()
    cached_models = sum(checkpoint_path(f, plan, out / "models", seed)[0].is_file() for f in FUSIONS)
    if pretrained is not None:
        checkpoints = {f: Path(pretrained[f]) for f in FUSIONS}
        cached_models = len(FUSIONS)
    else:
        jobs = [(f, plan, data_root, out / "models", seed) for f in FUSIONS]
        if plan.workers > 1:
            paths = pool_map(_pretrain_worker, jobs, min(plan.workers, len(jobs)))
        else:
            paths = [str(pretrained_checkpoint(*j)) for j in jobs]
        checkpoints = {f: Path(p) for f, p in zip(FUSIONS, paths)}
    timings["pretrain"] = time.perf_counter() - t

    log.info("3/6 zero-shot on the suite and the few-shot grid")
    t = time.perf_counter()
    specs = demo_specs(plan, checkpoints)
    from bench.results import store

    reused_runs = sum(store.finished_record(out, s) is not None for s in specs)
    prune_superseded_runs(out, specs)
    records = run_specs(specs, data_root, out, plan.workers)
    timings["runs"] = time.perf_counter() - t

    log.info("4/6 forgetting of base concepts after fine-tuning")
    t = time.perf_counter()
    from bench.studies.demo_extras import diagnose_runs

    forgetting_table, reused_forgetting = forgetting_stage(records, data_root, out, plan)
    diagnosis = diagnose_runs(records, data_root, out)
    timings["forgetting"] = time.perf_counter() - t

    log.info("5/6 self-training: a teacher grounds a concept it was never taught")
    t = time.perf_counter()
    selftrain, reused_selftrain = selftrain_stage(checkpoints["deep"], data_root, out, plan)
    timings["selftrain"] = time.perf_counter() - t

    log.info("6/6 leaderboard, cost curves and the fusion ablation")
    t = time.perf_counter()
    from bench.reports.browser import find_chromium

    board = ["leaderboard", "--results", str(out), "--out", str(out), "--no-reference"]
    if find_chromium():  # the page's first screen as a reader sees it; optional, like the browser itself
        board += ["--screenshot", str(out / "leaderboard.png")]
    else:
        log.info("no Chromium on PATH: leaderboard.png not redrawn (apt-get install chromium)")
    for argv in (board,
                 ["curves", "--results", str(out), "--out", str(out / "plots"), "--tasks", ",".join(plan.fewshot_tasks)],
                 ["ablation", "--a", "fusion=late", "--b", "fusion=deep", "--ignore", "checkpoint",
                  "--results", str(out), "--out", str(out / "ablation")]):
        if cli(argv) != 0:
            raise RuntimeError(f"glip-bench {' '.join(argv)} failed")
    timings["reports"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    from bench.studies.demo_extras import demo_summary

    reused = {"runs": reused_runs, "of_runs": len(specs), "models": cached_models, "of_models": len(FUSIONS),
              "stages": [n for n, r in (("forgetting", reused_forgetting), ("self-training", reused_selftrain)) if r]}
    summary = demo_summary(records, forgetting_table, selftrain, plan, timings, diagnosis, reused)
    from bench.results.compare import attach_reproduction

    summary = attach_reproduction(summary, records, committed)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "SUMMARY.md", summary["markdown"])
    print(summary["markdown"])
    return summary


def plan_json(quick: bool) -> str:
    return json.dumps(asdict(PLANS["quick" if quick else "full"]), indent=2)
