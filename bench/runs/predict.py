"""One evaluation path: a model's predictions of a split and their metric, for every caller.

The runner (its eval split, saved and sharded under torchrun), early stopping (the few-shot val split),
and the studies (forgetting, self-training) all call `evaluate_split`, so none of them can score a split
differently from the benchmark. Prediction formats: docs/formats.md, "Predictions".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.dist.inference import predict_sharded
from bench.metrics import MetricResult
from bench.models.base import DetectorAdapter, DetectSettings
from bench.results import store
from bench.runs.hparams import InferenceHParams
from bench.runs.scoring import score, score_saved

SHARD_PIECE = 32  # most images per inference shard file under torchrun (bench.dist.inference)


@dataclass(frozen=True)
class Evaluation:
    """A split's predictions, the seconds predicting took, and their metric."""

    predictions: list[dict[str, Any]]
    seconds: float
    result: MetricResult

    @property
    def primary(self) -> float:
        return float(self.result.values[self.result.primary])


@dataclass(frozen=True)
class Sharding:
    """Predict a split data-parallel in piece files under `folder` (resumable; bench.dist.inference).

    fingerprint: what the pieces were predicted by (spec, checkpoint, trained weights), so no piece
    predicted by other weights is reused.
    """

    folder: Path
    fingerprint: str


@dataclass(frozen=True)
class EvalTask:
    """What `evaluate_split` reads of a task (a registry Task has it all): for a study scoring its own data."""

    metric: str
    format: str
    detections_per_image: int


def is_grounding(task: Any) -> bool:
    from bench.tasks.task import GROUNDING_FORMATS

    return task.format in GROUNDING_FORMATS  # Flickr30K, referring expressions (EvalTask too)


def merges_capped(task: Any) -> bool:
    """Whether the merged chunks' detections are cut to detections_per_image again per image.

    Not for Fixed AP: the official chunked LVIS evaluation hands every chunk's (capped) detections to the
    Fixed-AP evaluator, which caps per class over the split, not per image (tasks/README.md).
    """
    return task.metric not in ("lvis_fixed_ap", "ov_lvis_fixed_ap")


def detection_caps(task: Any) -> dict[str, int | None] | None:
    """The caps a detection run applied, for its record (None for grounding)."""
    if is_grounding(task):
        return None
    merged = task.detections_per_image if merges_capped(task) else None
    return {"per_chunk": task.detections_per_image, "per_image_after_merge": merged}


def inference_autocast(amp: bool, device: str) -> torch.dtype | None:
    """The autocast dtype of a run's inference: bfloat16 when hp "infer_amp" is on and the device is CUDA
    (like training's "amp", ignored on CPU), else None (the model's own float32)."""
    return torch.bfloat16 if amp and str(device).startswith("cuda") else None


def detect_settings(task: Any, hp: InferenceHParams, device: str, num_workers: int | None = None) -> DetectSettings:
    """How `task` is predicted under a run's inference settings: the caps are the task's."""
    return DetectSettings(per_chunk_cap=task.detections_per_image,
                          per_image_cap=task.detections_per_image if merges_capped(task) else None,
                          batch_size=hp.infer_batch_size, device=device, num_workers=num_workers,
                          autocast_dtype=inference_autocast(hp.infer_amp, device))


def piece_size(num_keys: int) -> int:
    """Images (grounding: entries) per inference shard under torchrun: 32, or fewer so a split has >= 8 pieces.

    Depends on the split only, not on the number of processes, so a crashed run can be resumed with any
    number of them and keep its finished shards (bench.dist.inference).
    """
    return max(1, min(SHARD_PIECE, math.ceil(num_keys / 8)))


def predict_split(adapter: DetectorAdapter, task: Any, dataset: Any, settings: DetectSettings, *,
                  chunks: Sequence[tuple[Any, list[int]]] | None = None, ids: Sequence[int] | None = None,
                  timer: Any = None) -> list[dict[str, Any]]:
    """The predictions of `ids` (image ids; grounding: sample ids; default all) in the task's format."""
    if is_grounding(task):
        return adapter.ground(dataset, settings, sample_ids=ids, timer=timer)
    return adapter.detect(dataset, chunks, settings, image_ids=ids, timer=timer)


def evaluate_split(adapter: DetectorAdapter, task: Any, dataset: Any, settings: DetectSettings, *, backend: str,
                   chunks: Sequence[tuple[Any, list[int]]] | None = None, prompt_set: str = "plain",
                   timer: Any = None, save_to: str | Path | None = None, sharding: Sharding | None = None
                   ) -> Evaluation | None:
    """Predict every image (grounding: entry) of `dataset` and score the predictions with the task's metric.

    chunks: the class prompt (default: the adapter's chunks of the task's `prompt_set`; none for grounding).
    save_to: a run folder: the predictions are written there and the metric read from that file (what a
    rescore gives). sharding: predict data-parallel under torchrun; the processes other than rank 0
    return None (their pieces are on disk, rank 0 merges and scores).
    """
    if chunks is None and not is_grounding(task):
        chunks = adapter.prompt_chunks(task, dataset, prompt_set)
    if sharding is not None:
        keys = [s.id for s in dataset.samples] if is_grounding(task) else list(dataset.image_ids)
        result = predict_sharded(
            lambda ids: predict_split(adapter, task, dataset, settings, chunks=chunks, ids=ids, timer=timer),
            keys, sharding.folder, piece_size=piece_size(len(keys)), fingerprint=sharding.fingerprint)
        if result.predictions is None:
            return None
        preds, seconds = result.predictions, result.seconds
    else:
        preds, seconds = _timed(adapter, task, dataset, settings, chunks, timer)
    if save_to is None:
        return Evaluation(preds, seconds, score(task, dataset, preds, backend))
    store.write_predictions(save_to, preds)
    return Evaluation(preds, seconds, score_saved(task, dataset, save_to, backend))


def _timed(adapter: DetectorAdapter, task: Any, dataset: Any, settings: DetectSettings,
           chunks: Sequence[tuple[Any, list[int]]] | None, timer: Any) -> tuple[list[dict[str, Any]], float]:
    start = time.perf_counter()
    preds = predict_split(adapter, task, dataset, settings, chunks=chunks, timer=timer)
    return preds, time.perf_counter() - start
