"""One evaluation path: a model's predictions of a split and their metric, for every caller.

The runner (its eval split, saved and sharded under torchrun), early stopping (the few-shot val split),
and the studies (forgetting, self-training) all call `evaluate_split`, so none of them can score a split
differently from the benchmark. Prediction formats: docs/formats.md, "Predictions".
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.dist import comm as dist
from bench.dist.inference import iter_shards, predict_sharded
from bench.metrics import MetricResult
from bench.models.base import DetectorAdapter, DetectSettings, detect_dicts
from bench.results import store
from bench.runs.collect import DetectionCollector
from bench.runs.hparams import InferenceHParams
from bench.runs.scoring import score_saved

SHARD_PIECE = 32  # most images per inference shard file under torchrun (bench.dist.inference)


@dataclass(frozen=True)
class Evaluation:
    """How many predictions a split got, the seconds predicting took, and their metric."""

    num_predictions: int
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


def per_class_cap(task: Any) -> int | None:
    """Detections the task's metric keeps per class over the split (Fixed AP: 10,000), or None when it caps
    per image: what a run needs to keep of a class (bench.runs.collect)."""
    from bench.metrics.lvis import FIXED_AP_PER_CLASS

    return None if merges_capped(task) else FIXED_AP_PER_CLASS


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
    return detect_dicts(adapter, dataset, chunks, settings, image_ids=ids, timer=timer)


def evaluate_split(adapter: DetectorAdapter, task: Any, dataset: Any, settings: DetectSettings, *, backend: str,
                   chunks: Sequence[tuple[Any, list[int]]] | None = None, prompt_set: str = "plain",
                   timer: Any = None, save_to: str | Path | None = None, sharding: Sharding | None = None
                   ) -> Evaluation | None:
    """Predict every image (grounding: entry) of `dataset`, save the predictions file and score it with the
    task's metric (read once from the file: what a rescore gives).

    chunks: the class prompt (default: the adapter's chunks of the task's `prompt_set`; none for grounding).
    save_to: a run folder to write the predictions to (None: a temporary folder, removed after scoring).
    sharding: predict data-parallel under torchrun; the processes other than rank 0 return None (their
    pieces are on disk, rank 0 merges and scores). Detections stream into the file image by image
    (bench.runs.collect), so a run holds neither a list of them nor, for Fixed AP, more than the metric keeps.
    """
    if chunks is None and not is_grounding(task):
        chunks = adapter.prompt_chunks(task, dataset, prompt_set)
    with _folder(save_to) as folder:
        if is_grounding(task):
            saved = _ground(adapter, task, dataset, settings, folder, sharding, timer)
        else:
            saved = _detect(adapter, task, dataset, settings, chunks, folder, sharding, timer)
        if saved is None:
            return None
        count, seconds = saved
        return Evaluation(count, seconds, score_saved(task, dataset, folder, backend))


@contextmanager
def _folder(save_to: str | Path | None) -> Iterator[Path]:
    if save_to is not None:
        yield Path(save_to)
        return
    with tempfile.TemporaryDirectory(prefix="glip-bench-eval-") as tmp:
        yield Path(tmp)


def _detect(adapter: DetectorAdapter, task: Any, dataset: Any, settings: DetectSettings,
            chunks: Sequence[tuple[Any, list[int]]] | None, folder: Path, sharding: Sharding | None, timer: Any
            ) -> tuple[int, float] | None:
    """Detections of the split into folder's predictions file: (their number, seconds predicting), or None
    on a rank other than 0."""
    ids = list(dataset.image_ids)
    start = time.perf_counter()
    if sharding is not None:
        shards = predict_sharded(
            lambda part: predict_split(adapter, task, dataset, settings, chunks=chunks, ids=part, timer=timer),
            ids, sharding.folder, piece_size=piece_size(len(ids)), fingerprint=sharding.fingerprint, merge=False)
        if not dist.is_main():
            return None
        with DetectionCollector(folder, ids, per_class_cap(task)) as collector:
            for image_id, entries in iter_shards(sharding.folder, ids, piece_size=piece_size(len(ids)),
                                                 fingerprint=sharding.fingerprint):
                collector.add_entries(image_id, entries)
            return collector.finish(), shards.seconds
    with DetectionCollector(folder, ids, per_class_cap(task)) as collector:
        for image_id, rows in adapter.detect_images(dataset, chunks, settings, timer=timer):
            collector.add(image_id, rows)
        seconds = time.perf_counter() - start - collector.seconds  # the model's and data's time, not the file's
        return collector.finish(), seconds


def _ground(adapter: DetectorAdapter, task: Any, dataset: Any, settings: DetectSettings, folder: Path,
            sharding: Sharding | None, timer: Any) -> tuple[int, float] | None:
    """Grounding entries (one per caption: few and small) into folder's predictions file, as one list."""
    if sharding is not None:
        keys = [s.id for s in dataset.samples]
        result = predict_sharded(lambda ids: predict_split(adapter, task, dataset, settings, ids=ids, timer=timer),
                                 keys, sharding.folder, piece_size=piece_size(len(keys)),
                                 fingerprint=sharding.fingerprint)
        if result.predictions is None:
            return None
        preds, seconds = result.predictions, result.seconds
    else:
        start = time.perf_counter()
        preds = predict_split(adapter, task, dataset, settings, timer=timer)
        seconds = time.perf_counter() - start
    store.write_predictions(folder, preds)
    return len(preds), seconds
