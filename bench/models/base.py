"""The model seam: what the harness needs from a model family and from a built detector.

Two protocols, both everything the runner calls:

- `ModelFamily` (one per family, declared in one module of bench/models/families/, found by
  bench.models.registry): which model names it takes (GLIP presets, or the config.json `model_type`s of
  an `hf:DIR`), its model config (built once per spec and carried by the resolved run), what it can run
  per regime and task kind and why not (`refusal`), the settings it refuses (`check_run`), and `build`.
- `DetectorAdapter` (what `build` returns): prompts, detection, grounding, parameter groups, and for
  training and the record `training_set`, `record_fields`, `size_divisibility`.

The task, not the model, decides the prompt text and order, the chunking, the detection caps and the
thresholds (`DetectSettings`); an adapter turns those into its model's inputs and its outputs back into
the harness's prediction formats (docs/formats.md): COCO results in original pixels for detection, and
Flickr30K entries for grounding. Shared pieces every adapter uses: `merge_chunks` (one image's chunk
outputs merged by score and capped), `grounding_entry`, and `ModelTimer` (seconds inside model calls).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

TASK_KINDS = ("detection", "grounding")  # the task kinds a family declares its regimes for
# `--set protocol=published`: evaluate with the family's own published settings (its paper's detection cap,
# prompt templates...) instead of the task's; each family says what that means, or refuses it
PROTOCOLS = ("task", "published")
MODEL_SETTINGS = {"protocol": "task"}  # model-side run settings every family takes, beside GLIP's config fields
INIT_SEED = 0  # torch seed while a model is built (its random init, where no checkpoint sets the weights)


@dataclass(frozen=True)
class DetectSettings:
    """How a split is predicted: pinned by the task and the run's inference hyper-parameters.

    per_chunk_cap: detections kept per image per prompt chunk (the task's detections_per_image).
    per_image_cap: the cap again after the chunks' detections are merged, or None to keep them all
    (Fixed AP caps per class over the split instead).
    """

    per_chunk_cap: int
    per_image_cap: int | None
    batch_size: int = 1
    device: str = "cpu"
    num_workers: int | None = None
    autocast_dtype: torch.dtype | None = None


@runtime_checkable
class DetectorAdapter(Protocol):
    """One model family behind the harness. `module` is the torch module that trains and is saved."""

    family: str
    module: nn.Module

    def refuses(self, regime: str) -> str | None:
        """Why this model cannot run `regime` (a sentence naming what is missing), or None if it can."""
        ...

    def prompt_chunks(self, task: Any, dataset: Any, prompt_set: str) -> list[tuple[Any, list[int]]]:
        """The task's class prompt as this model's text inputs: (chunk, category id of each phrase) per chunk."""
        ...

    def detect_images(self, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], settings: DetectSettings, *,
                      image_ids: Sequence[int] | None = None, timer: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        """Per image of `image_ids` (default all) as it finishes, in any order: (image id, its detections as
        `detection_rows`, by score). What a run streams into its predictions file (bench.runs.collect)."""
        ...

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        """Flickr30K-style predictions: per entry, per phrase, boxes by score (docs/formats.md)."""
        ...

    def parameter_groups(self) -> Mapping[str, list[str]]:
        """Parameter names of `module` by group (the groups a regime's `train_groups` name)."""
        ...

    # --- training and the record
    size_divisibility: int  # training batches pad images to a multiple of this (0: the training set batches itself)

    def training_set(self, dataset: Any, chunk: tuple[Any, list[int]], seed: int) -> Any:
        """The training samples of a detection split under the class prompt's one chunk (a torch Dataset)."""
        ...

    def record_fields(self, trains: bool) -> dict[str, Any]:
        """What a record says of this model beyond the run's own fields: {"model": {...}, "provenance": {...}}."""
        ...


@runtime_checkable
class ModelFamily(Protocol):
    """One model family: which names it takes, its config, what it can run, and how it is built.

    `regimes` declares, per task kind (TASK_KINDS), the regimes it can run; `refusal` says why not for the
    others, in a sentence naming what is missing. A family whose adapter also has
    `sampled_training_set(dataset, entries, separator, settings, seed)` (per-image sampled captions,
    bench.data.od_captions: what tasks with a `train_prompt` train with) says so with an attribute
    `sampled_captions_refusal = None`; a training family without it (or with a reason there) is refused
    on those tasks by bench.runs.spec. A family that runs prompt-tuning gives its adapter
    `anchor_prompt_offsets(chunks)` (bench.data.prompt_anchor), which bench.runs.train_stage calls when a
    task's captions change.
    """

    name: str
    model_types: tuple[str, ...]  # config.json model_type values it takes under hf:DIR (() for none)
    takes_presets: bool  # it takes the preset names (model names without the hf: prefix)
    regimes: Mapping[str, tuple[str, ...]]

    def model_config(self, model: str, overrides: Mapping[str, Any], checkpoint: str | None) -> Any:
        """The model's config (no weights read): a bad name, value or checkpoint -> UserError.

        overrides: the spec's model overrides (GLIP's config fields, and MODEL_SETTINGS such as
        protocol="published", which a family applies or refuses by name)."""
        ...

    def refusal(self, regime: str, task_kind: str) -> str | None:
        """Why this family cannot run `regime` on a `task_kind` task, or None if it can."""
        ...

    def check_run(self, config: Any, *, regime: str, text_encoder: str | Path | None, infer_batch_size: int,
                  world_size: int) -> None:
        """Refuse (UserError) settings this model cannot run with, before any compute."""
        ...

    def build(self, config: Any, checkpoint: str | None, text_encoder: str | Path | None) -> DetectorAdapter:
        """The adapter of a model with this config (built on CPU, under the seed INIT_SEED)."""
        ...


def merge_chunks(parts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], cap: int | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's chunk outputs (boxes [N_k, 4], scores [N_k], category ids [N_k]), concatenated in chunk
    order, sorted by score (stable) and cut to `cap` (None: keep all) -> (boxes, scores, category ids)."""
    boxes = torch.cat([p[0] for p in parts]).reshape(-1, 4)
    scores = torch.cat([p[1] for p in parts])
    cats = torch.cat([p[2] for p in parts])
    order = torch.argsort(scores, descending=True, stable=True)
    if cap is not None:
        order = order[:cap]
    return boxes[order], scores[order], cats[order]


def detection_rows(image_id: int, boxes_xywh: torch.Tensor, scores: torch.Tensor, category_ids: torch.Tensor
                   ) -> np.ndarray:
    """One image's detections as (N, 7) float64 rows [image_id, x, y, w, h, score, category_id], the form
    scoring reads (bench.metrics.detections). float32 (and bfloat16) values and ids below 2**53 are exact
    in float64, so the file written from the rows holds the numbers a list of `tolist()` dicts held."""
    n = len(scores)
    rows = np.empty((n, 7), dtype=np.float64)
    rows[:, 0] = int(image_id)
    rows[:, 1:5] = _float64(boxes_xywh).reshape(n, 4)
    rows[:, 5] = _float64(scores)
    rows[:, 6] = _float64(category_ids)
    return rows


def _float64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def detect_dicts(adapter: DetectorAdapter, dataset: Any, chunks: Sequence[tuple[Any, list[int]]],
                 settings: DetectSettings, *, image_ids: Sequence[int] | None = None, timer: Any = None
                 ) -> list[dict[str, Any]]:
    """COCO-format detections (xywh in original pixels, category_id, score) of `image_ids` (default all), in
    their order: the adapter's `detect_images` as one list (an adapter checks its settings when called)."""
    per_image = adapter.detect_images(dataset, chunks, settings, image_ids=image_ids, timer=timer)
    return detection_dicts(per_image, list(dataset.image_ids if image_ids is None else image_ids))


def detection_dicts(per_image: Iterable[tuple[int, np.ndarray]], image_ids: Sequence[int]) -> list[dict[str, Any]]:
    """COCO result dicts of `detect_images`' output, in the order of `image_ids` (a list held in memory: for
    callers that want one; a run streams instead, bench.runs.collect)."""
    from bench.metrics.detections import as_dicts

    by_image = dict(per_image)
    return [d for i in image_ids for d in as_dicts(by_image[int(i)])]


@dataclass
class ModelTimer:
    """Seconds spent inside model calls (backbone, text encoder, head, postprocess) vs the whole loop.

    `harness_fraction` = 1 - model / total: data loading, batching, format conversion and bookkeeping.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    total: float = 0.0

    @contextmanager
    def time(self, what: str, device: str | torch.device = "cpu") -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - start
            self.calls[what] = self.calls.get(what, 0) + 1

    @property
    def model_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def harness_fraction(self) -> float:
        return 1.0 - self.model_seconds / self.total if self.total > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"total_seconds": self.total, "model_seconds": self.model_seconds,
                "harness_fraction": self.harness_fraction, "seconds": dict(self.seconds), "calls": dict(self.calls)}


def grounding_entry(sample_id: int, boxes: torch.Tensor, scores: torch.Tensor, phrases: torch.Tensor,
                    num_phrases: int) -> dict[str, Any]:
    """Flickr30K prediction entry (docs/formats.md): per phrase, its boxes (xyxy pixels) by score,
    descending and stable."""
    per_boxes, per_scores = [], []
    for p in range(num_phrases):
        idx = (phrases == p).nonzero().flatten()
        idx = idx[scores[idx].argsort(descending=True, stable=True)]
        per_boxes.append(boxes[idx].tolist())
        per_scores.append(scores[idx].tolist())
    return {"image_id": int(sample_id), "boxes": per_boxes, "scores": per_scores}
