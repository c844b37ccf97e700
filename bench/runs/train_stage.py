"""The training stage of a run: the few-shot subsets, the training samples, early stopping on the val split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.models.base import DetectorAdapter
from bench.runs.predict import detect_settings, evaluate_split
from bench.runs.spec import ResolvedRun, RunContext
from bench.runs.train import train
from bench.tasks.fewshot import fewshot_subset
from bench.util.errors import UserError


@dataclass(frozen=True)
class Trained:
    """What training left for the record: its result, the trained parameter names, the sampled subsets."""

    result: dict[str, Any]  # bench.runs.train.TrainResult.to_dict()
    trainable: list[str]
    fewshot: dict[str, Any]


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
    if len(chunks) != 1:
        raise UserError(f"task {task.name}: the class prompt needs {len(chunks)} captions; training needs one")
    if task.open_vocab is not None:  # train and stop early on the base classes only: prompts from the base view
        chunks = adapter.prompt_chunks(task, tr.dataset, spec.prompt_set)
    dataset = adapter.training_set(tr.dataset, chunks[0], spec.seed)
    settings = detect_settings(task, hp.infer, ctx.device, ctx.num_workers)

    def val_metric(_: Any) -> float:
        return evaluate_split(adapter, task, va.dataset, settings, backend=ctx.metric_backend, chunks=chunks).primary

    trainable = run.regime.trainable_names(adapter.parameter_groups())
    result = train(adapter.module, dataset, trainable=trainable, hp=hp.train, device=ctx.device, seed=spec.seed,
                   evaluate=val_metric, eval_modules=run.regime.eval_modules,
                   progress=(f"train {spec.task} {spec.regime} {spec.shots}-shot seed {spec.seed}", None))
    fewshot = {"train_image_ids": sorted(tr.image_ids), "train_source": tr.source, "val_split": run.val_split,
               "val_image_ids": sorted(va.image_ids), "val_source": va.source, "train_images_with_boxes": len(dataset)}
    return Trained(result=result.to_dict(), trainable=trainable, fewshot=fewshot)
