"""One run as a sequence of stages: resolve -> model -> data -> train -> predict (+ save, score) -> record.

A run's folder is <results>/runs/<spec.run_name>/ (bench.results.store; docs/formats.md, "A run folder").
The record is written last: its presence marks the run finished. Under torchrun every process calls
`run_one`: each predicts its shards of the split (bench.dist.inference), rank 0 merges, scores, writes the
record and returns it; the other ranks return None.
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bench.dist import comm as dist
from bench.dist.inference import SHARD_DIR, remove_shards
from bench.models.base import DetectorAdapter, ModelTimer
from bench.results import store
from bench.results.records import Cost, Metrics, RunSpec, TaskInfo, build_record
from bench.runs.predict import (
    Evaluation,
    Sharding,
    detect_settings,
    detection_caps,
    evaluate_split,
    is_grounding,
)
from bench.runs.scoring import extra_metrics
from bench.runs.spec import ResolvedRun, RunContext, check_world, resolve
from bench.runs.train_stage import Trained, train_stage
from bench.util.io import user_write
from bench.util.logs import get_logger
from bench.util.provenance import checkpoint_pretrain_seed, device_name, file_sha256, provenance
from glip.checkpoint import write_safetensors  # the one weights writer (atomic)

log = get_logger("runner")


@dataclass(frozen=True)
class RunData:
    """The eval split and the class prompt of a run (no prompt for grounding: each entry has its caption)."""

    dataset: Any
    chunks: list[tuple[Any, list[int]]] | None


@dataclass(frozen=True)
class Predicted:
    """The scored eval split, and the timer of the model calls that predicted it."""

    evaluation: Evaluation
    timer: ModelTimer


def run_one(spec: RunSpec | ResolvedRun, ctx: RunContext) -> dict[str, Any] | None:
    """Train (per the regime), predict the eval split, save predictions, score, write the record last."""
    run = spec if isinstance(spec, ResolvedRun) else resolve(spec, ctx.data_root, check_data=False)
    check_world([run])
    started, t0 = now(), time.perf_counter()
    folder = store.run_dir(ctx.results_dir, run.spec)
    store.clean_partial(folder)
    if str(ctx.device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    adapter = ctx.models.get(run.spec.model, run.spec.checkpoint, run.model_overrides, resolved=run.model)
    data = load_data(run, ctx, adapter)
    trained = train_stage(run, ctx, adapter, data.chunks)
    predicted = predict_stage(run, ctx, adapter, data, folder)
    if predicted is None:  # not rank 0: its shards are on disk, rank 0 merges and scores
        return None
    files = save_trained(run, ctx, adapter, folder)
    extra = adapter.record_fields(run.trains)  # what a model family adds (GLIP: nothing)
    model = {"preset": run.spec.model, "overrides": run.model_overrides, "checkpoint": run.spec.checkpoint,
             **extra.get("model", {})}
    record = build_record(
        run.spec, task=task_info(run, ctx, len(data.dataset)), metrics=Metrics.from_result(predicted.evaluation.result),
        cost=cost(run, ctx, adapter, trained, predicted, len(data.dataset)),
        provenance=run_provenance(run, ctx, data, model["checkpoint"],
                                  {**extra.get("provenance", {}), **(trained.provenance if trained else {})}),
        hparams=run.hparams.as_dict(), model=model,
        training=trained.result if trained else None, fewshot=trained.fewshot if trained else None, files=files,
        started_at=started, finished_at=now(), wall_seconds=time.perf_counter() - t0)
    if run.task.extra_metrics:  # the task's extra metrics (bench.metrics.extras), from the saved predictions
        record["metrics"]["extra"] = extra_metrics(run.task.extra_metrics, run.task, data.dataset, folder,
                                                   ctx.metric_backend)
    store.write_record(folder, record)  # last: its presence marks the run finished
    remove_shards(folder)  # merged into the predictions file
    log.info("%s: %s = %.2f", run.spec.run_name, record["metrics"]["primary"], predicted.evaluation.primary)
    return record


def load_data(run: ResolvedRun, ctx: RunContext, adapter: DetectorAdapter) -> RunData:
    dataset = run.task.load(run.eval_split, ctx.data_root)
    chunks = None if is_grounding(run.task) else adapter.prompt_chunks(run.task, dataset, run.spec.prompt_set)
    return RunData(dataset=dataset, chunks=chunks)


def predict_stage(run: ResolvedRun, ctx: RunContext, adapter: DetectorAdapter, data: RunData,
                  folder: Path) -> Predicted | None:
    """Predict, save and score the eval split; data-parallel under torchrun, or when resuming such a run."""
    timer = ModelTimer()
    sharding = None
    if dist.world_size() > 1 or (folder / SHARD_DIR).is_dir():
        digest = weights_digest(adapter, run.regime.stored_names(adapter.parameter_groups())) if run.trains else None
        sharding = Sharding(folder, f"{run.spec.hash}:{file_sha256(run.spec.checkpoint)}:{digest}")
    settings = detect_settings(run.task, run.hparams.infer, ctx.device, ctx.num_workers)
    evaluation = evaluate_split(adapter, run.task, data.dataset, settings, backend=ctx.metric_backend,
                                chunks=data.chunks, timer=timer, save_to=folder, sharding=sharding)
    return None if evaluation is None else Predicted(evaluation, timer)


def save_trained(run: ResolvedRun, ctx: RunContext, adapter: DetectorAdapter, folder: Path) -> list[str]:
    """Write a training run's stored tensors (unless ctx.save_adapter is off); the files the record lists."""
    if not (run.trains and ctx.save_adapter):
        return [store.PREDICTIONS]
    params = dict(adapter.module.named_parameters())
    write_adapter(folder, {n: params[n] for n in run.regime.stored_names(adapter.parameter_groups())})
    return [store.PREDICTIONS, store.ADAPTER]


def write_adapter(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """The run's trained tensors (store.ADAPTER), atomically; a full disk or a read-only folder is a UserError
    naming the path."""
    path = Path(folder) / store.ADAPTER
    with user_write(path):
        return write_safetensors(path, tensors)


def task_info(run: ResolvedRun, ctx: RunContext, num_images: int) -> TaskInfo:
    task = run.task
    return TaskInfo(name=task.name, version=task.version, groups=list(task.groups), metric=task.metric,
                    split=run.eval_split, num_images=num_images,
                    ann_sha256=file_sha256(task.ann_path(run.eval_split, ctx.data_root)))


def cost(run: ResolvedRun, ctx: RunContext, adapter: DetectorAdapter, trained: Trained | None, predicted: Predicted,
         num_images: int) -> Cost:
    numel = {n: p.numel() for n, p in adapter.module.named_parameters()}
    train_seconds = trained.result["train_seconds"] if trained else 0.0
    infer_seconds = predicted.evaluation.seconds
    cuda = str(ctx.device).startswith("cuda")
    return Cost(
        total_params=sum(numel.values()),
        trainable_params=sum(numel[n] for n in (trained.trainable if trained else [])),
        stored_params=sum(numel[n] for n in run.regime.stored_names(adapter.parameter_groups())),
        train_seconds=train_seconds,
        images_seen=trained.result["images_seen"] if trained else 0,
        infer_images_per_s=num_images / infer_seconds if infer_seconds > 0 else 0.0,
        infer_seconds=infer_seconds,
        infer_model_seconds=predicted.timer.model_seconds,
        peak_memory_mb=peak_memory_mb(ctx.device),
        peak_memory_kind="cuda max allocated" if cuda else "process peak RSS",
        device=device_name(ctx.device),
        device_hours=(train_seconds + infer_seconds) * dist.world_size() / 3600.0,  # every process holds a device
    )


def run_provenance(run: ResolvedRun, ctx: RunContext, data: RunData, checkpoint: str | None,
                   model_extra: dict[str, Any]) -> dict[str, Any]:
    spec, task, chunks = run.spec, run.task, data.chunks
    return provenance(
        seeds=run_seeds(spec),
        ann_sha256={s: file_sha256(task.ann_path(s, ctx.data_root)) for s in run.splits},
        checkpoint=checkpoint, prompt_set=spec.prompt_set, chunk_size=task.chunk_size,
        metric_backend=ctx.metric_backend,
        extra={"task_file_version": task.version, "num_prompt_chunks": None if chunks is None else len(chunks),
               "captions": None if chunks is None else [_prompt_text(c) for c, _ in chunks],
               "world_size": dist.world_size(), "detection_caps": detection_caps(task),
               **task.provenance_notes(run.splits, ctx.data_root), **model_extra},
        results_dir=ctx.results_dir,
    )


def run_seeds(spec: RunSpec) -> dict[str, int]:
    """The seeds a run's numbers depend on: its own, and the pretraining seed of its checkpoint when known."""
    pretrain_seed = checkpoint_pretrain_seed(spec.checkpoint)
    return {"fewshot": spec.seed, "train": spec.seed, **({} if pretrain_seed is None else {"pretrain": pretrain_seed})}


def _prompt_text(chunk: Any) -> Any:
    """A chunk's caption, or its list of per-class queries (OWL-style models have no caption)."""
    return chunk.caption if getattr(chunk, "caption", None) else list(chunk.entries)


def weights_digest(adapter: DetectorAdapter, names: Iterable[str]) -> str:
    """sha256 of the named parameters' bytes: shards predicted by other trained weights are not reused."""
    params = dict(adapter.module.named_parameters())
    h = hashlib.sha256()
    for n in sorted(names):
        h.update(n.encode())
        h.update(params[n].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def peak_memory_mb(device: str) -> float:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
