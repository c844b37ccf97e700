"""What the harness needs from a detector, so that GLIP and other grounded detectors run one protocol.

The task, not the model, decides the prompt text and order, the chunking, the detection caps and the
thresholds (`DetectSettings`); an adapter turns those into its model's inputs and its outputs back into
the harness's prediction formats (docs/formats.md): COCO results in original pixels for detection, and
Flickr30K entries for grounding. A regime the adapter cannot do is refused before any compute
(`refuses`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


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

    def detect(self, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], settings: DetectSettings, *,
               image_ids: Sequence[int] | None = None, timer: Any = None) -> list[dict[str, Any]]:
        """COCO-format detections (xywh in original pixels, category_id, score) of `image_ids` (default all)."""
        ...

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        """Flickr30K-style predictions: per entry, per phrase, boxes by score (docs/formats.md)."""
        ...

    def parameter_groups(self) -> Mapping[str, list[str]]:
        """Parameter names of `module` by group (the groups a regime's `train_groups` name)."""
        ...


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
