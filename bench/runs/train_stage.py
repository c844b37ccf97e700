"""The training stage of a run: the few-shot subsets, the training samples, early stopping on the val split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.data.od_captions import TrainPrompt
from bench.models.base import DetectorAdapter
from bench.runs.predict import detect_settings, evaluate_split
from bench.runs.spec import ResolvedRun, RunContext
from bench.runs.train import train
from bench.tasks.fewshot import fewshot_subset
from bench.tasks.prompts import class_entries
from bench.util.errors import UserError


@dataclass(frozen=True)
class Trained:
    """What training left for the record: its result, the trained parameter names, the sampled subsets."""

    result: dict[str, Any]  # bench.runs.train.TrainResult.to_dict()
    trainable: list[str]
    fewshot: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)  # the sampled train prompt's record, if any


def train_stage(run: ResolvedRun, ctx: RunContext, adapter: DetectorAdapter,
                chunks: list[tuple[Any, list[int]]]) -> Trained | None:
    """Train `adapter`'s regime parameters on the run's k-shot subset (None: the regime trains nothing).

    Early stopping scores the few-shot val split through `evaluate_split`, exactly as the eval split is.
    """
    if not run.trains:
        return None
    task, spec, hp = run.task, run.spec, run.hparams
    tr = fewshot_subset(task, run.train_split, spec.shots, spec.seed, ctx.data_root, which="train")
    va = fewshot_subset(task, run.val_split, hp.train.val_shots, spec.seed, ctx.data_root, which="val")
    if task.train_prompt is None and len(chunks) != 1:
        raise UserError(f"task {task.name}: the class prompt needs {len(chunks)} captions; training needs one "
                        "(or per-image sampled captions: train_prompt in its task file)")
    anchor = anchor_prompt_offsets(run, adapter, chunks)
    if task.open_vocab is not None:  # train and stop early on the base classes only: prompts from the base view
        chunks = adapter.prompt_chunks(task, tr.dataset, spec.prompt_set)
    dataset = training_view(adapter, task, tr.dataset, chunks, spec.prompt_set, spec.seed)
    settings = detect_settings(task, hp.infer, ctx.device, ctx.num_workers)

    def val_metric(_: Any) -> float:
        return evaluate_split(adapter, task, va.dataset, settings, backend=ctx.metric_backend, chunks=chunks).primary

    trainable = run.regime.trainable_names(adapter.parameter_groups())
    result = train(adapter.module, dataset, trainable=trainable, hp=hp.train, device=ctx.device, seed=spec.seed,
                   evaluate=val_metric, eval_modules=run.regime.eval_modules,
                   progress=(f"train {spec.task} {spec.regime} {spec.shots}-shot seed {spec.seed}", None))
    fewshot = {"train_image_ids": sorted(tr.image_ids), "train_source": tr.source, "val_split": run.val_split,
               "val_image_ids": sorted(va.image_ids), "val_source": va.source, "train_images_with_boxes": len(dataset)}
    sampler = getattr(dataset, "sampler", None)
    provenance = {} if sampler is None else {"train_prompt": sampler.record()}
    if anchor is not None:
        provenance["prompt_offsets"] = anchor.record()
    return Trained(result=result.to_dict(), trainable=trainable, fewshot=fewshot, provenance=provenance)


def captions_change(task: Any) -> bool:
    """Whether a run trains or evaluates under more than one caption: per-image sampled training captions,
    or an open-vocabulary task's base-class training caption beside its all-class evaluation prompt."""
    return task.train_prompt is not None or task.open_vocab is not None


def anchor_prompt_offsets(run: ResolvedRun, adapter: DetectorAdapter, chunks: list[tuple[Any, list[int]]]) -> Any:
    """Prompt tuning where captions change: the offsets follow class names and words rather than positions
    (bench.data.prompt_anchor), laid out over the evaluated prompt's `chunks`. Returns the anchor or None."""
    if "prompt" not in run.regime.train_groups or not captions_change(run.task):
        return None  # official per-position offsets: one fixed caption trains and is evaluated
    return adapter.anchor_prompt_offsets(chunks)


def training_view(adapter: DetectorAdapter, task: Any, dataset: Any, chunks: list[tuple[Any, list[int]]],
                  prompt_set: str, seed: int) -> Any:
    """The task's training captions: its one class caption (chunks[0], every class as evaluated), or per
    image its classes plus sampled negatives of the data set's classes (task.train_prompt; chunked tasks)."""
    if task.train_prompt is None:
        return adapter.training_set(dataset, chunks[0], seed)
    return adapter.sampled_training_set(dataset, class_entries(task, dataset, prompt_set), task.separator,
                                        TrainPrompt.from_block(task.train_prompt), seed)
