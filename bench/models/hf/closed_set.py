"""`ClosedSetAdapter`: a closed-set transformers detector (RT-DETR, RT-DETRv2, D-FINE) as the supervised baseline.

Such a model reads no text: its classifier has one output column per class it was trained on
(config.json's `id2label`). The task's classes are matched to those columns by name; when a class is
missing (a COCO checkpoint on an ODinW set, or a random one), the model is loaded again with a classifier
sized to the task's classes (transformers' `ignore_mismatched_sizes`: every tensor whose shape depends on
the class count is initialised afresh by the model's own `_init_weights`, under the seed INIT_SEED), and the
record names the re-initialised tensors. The re-headed model is a new `module`, so bench.models.cache
builds the checkpoint again for the next run instead of resetting weights of another shape.

Detection follows transformers' RT-DETR post-processing (`post_process_object_detection` with focal
scores): sigmoid scores over (query, class) pairs, the top pairs of the image kept with no threshold,
boxes scaled from normalised (cx, cy, w, h) to the original image, then clipped to it (as every family here).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.models.base import INIT_SEED, DetectSettings, merge_chunks
from bench.models.hf import outputs
from bench.models.hf.adapter import TRAIN_FLIP_PROB, HFDetector
from bench.models.hf.loading import load_complete, weights_file
from bench.util.errors import UserError


@dataclass(frozen=True)
class ClassHead:
    """A task's classes as the model's classifier columns: `entries` (class names) scored by `columns`."""

    entries: tuple[str, ...]
    columns: tuple[int, ...]


@dataclass
class Reheaded:
    """What re-heading changed, for the record."""

    checkpoint_classes: int
    task_classes: int
    reinitialised: list[str]
    seed: int = INIT_SEED


def _key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def head_columns(names: Sequence[str], id2label: Mapping[int, str]) -> tuple[int, ...] | None:
    """The classifier column of each class name (case, spaces and underscores ignored), or None when one is
    missing or a label is ambiguous: the head does not fit the task."""
    columns: dict[str, int] = {}
    for column, label in id2label.items():
        if _key(label) in columns:
            return None
        columns[_key(label)] = int(column)
    if not all(_key(n) in columns for n in names):
        return None
    return tuple(columns[_key(n)] for n in names)


class ClosedSetAdapter:
    """Detection with a closed-set detector whose classifier is matched (or re-sized) to the task's classes."""

    def __init__(self, name: str, folder: Path, model: Any, image_processor: Any) -> None:
        self.name, self.folder, self.family = name, folder, "closed-set"
        self.image_processor = image_processor
        self.module = HFDetector(model)
        self.size_divisibility = 0  # unused: the train view batches itself
        self.reheaded: Reheaded | None = None
        self.batch_size = 1
        self.autocast: str | None = None

    @property
    def model(self) -> Any:
        return self.module.model

    # ------------------------------------------------------------------ protocol
    def refuses(self, regime: str) -> str | None:
        from bench.models.families.closed_set import refusal

        return refusal(regime, "detection")

    def parameter_groups(self) -> Mapping[str, list[str]]:
        return self.module.parameter_groups()

    def prompt_chunks(self, task: Any, dataset: Any, prompt_set: str) -> list[tuple[ClassHead, list[int]]]:
        """One chunk of every class (no prompt: the model has no text input), its columns in the classifier;
        the classifier is re-sized to the task's classes first when its labels do not cover them."""
        names = [str(c["name"]) for c in dataset.categories]
        ids = [int(c["id"]) for c in dataset.categories]
        columns = head_columns(names, self.model.config.id2label)
        if columns is None:
            self._rehead(names)
            columns = tuple(range(len(names)))
        return [(ClassHead(tuple(names), columns), ids)]

    def detect_images(self, dataset: Any, chunks: Sequence[tuple[ClassHead, list[int]]], settings: DetectSettings, *,
                      image_ids: Sequence[int] | None = None, timer: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        """One forward per batch of images (the processor resizes each to one size); per image and chunk the
        top (query, class) pairs of the chunk's columns."""
        self.module.to(settings.device).eval()
        self.batch_size = settings.batch_size
        self.autocast = None if settings.autocast_dtype is None else str(settings.autocast_dtype)
        ids = list(image_ids if image_ids is not None else dataset.image_ids)
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start:start + self.batch_size]
            images = [dataset.load_image(i) for i in batch]
            out = self._forward(self.pixel_inputs(images), settings, timer)
            for j, (image_id, image) in enumerate(zip(batch, images)):
                parts = [self._chunk_detections(out, j, chunk, cat_ids, image.size, settings.per_chunk_cap)
                         for chunk, cat_ids in chunks]
                yield image_id, outputs.coco_rows(image_id, *merge_chunks(parts, settings.per_image_cap))

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        raise ValueError(self.refuses_grounding())

    def refuses_grounding(self) -> str:
        from bench.models.families.closed_set import refusal

        return str(refusal("zero-shot", "grounding"))

    def training_set(self, dataset: Any, chunk: tuple[ClassHead, list[int]], seed: int) -> Any:
        """The split's boxes labelled by classifier column, flipped as the other transformers families."""
        from bench.models.hf.training import CaptionTrainSet

        head, cat_ids = chunk
        return CaptionTrainSet(dataset, list(cat_ids), {}, self.image_processor, seed=seed,
                               flip_prob=TRAIN_FLIP_PROB, columns=dict(zip(cat_ids, head.columns)))

    def record_fields(self, trains: bool) -> dict[str, Any]:
        """The family, the weights file, and the classifier: kept from the checkpoint or re-initialised."""
        head = ({"kept_from_checkpoint": True} if self.reheaded is None else
                {"kept_from_checkpoint": False, **vars(self.reheaded)})
        return {"model": {"family": self.family, "checkpoint": str(weights_file(self.folder))},
                "provenance": {"model_limits": self.limits(), "classifier": head,
                               "train_flip_prob": TRAIN_FLIP_PROB if trains else None}}

    def limits(self) -> dict[str, Any]:
        return {"family": self.family, "model_type": self.model.config.model_type,
                "model_class": type(self.model).__name__, "text_input": None, "score_threshold": 0.0,
                "scoring": "top (query, class) pairs, sigmoid (transformers' RT-DETR post-processing)",
                "box_frame": "image", "infer_batch_size": self.batch_size, "autocast": self.autocast,
                "image_processor": type(self.image_processor).__name__,
                "box_clipping": "corners clipped to the image"}

    # ------------------------------------------------------------------ pieces
    def pixel_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """[B, 3, H, W] pixels; a batch whose images the processor padded is refused (moves the numbers)."""
        batch = self.image_processor(images=list(images), return_tensors="pt")
        if "pixel_mask" in batch and not bool(batch["pixel_mask"].all()):
            raise ValueError(f"{self.name}: its image processor padded the images of a batch; use batch 1")
        return {"pixel_values": batch["pixel_values"]}

    def _forward(self, inputs: dict[str, torch.Tensor], settings: DetectSettings, timer: Any) -> Any:
        device, dtype = settings.device, settings.autocast_dtype
        inputs = {k: v.to(device) for k, v in inputs.items()}
        amp = torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else nullcontext()
        clock = timer.time("model", device) if timer is not None else nullcontext()
        with torch.no_grad(), amp, clock:
            return self.model(**inputs)

    def _chunk_detections(self, out: Any, j: int, head: ClassHead, cat_ids: Sequence[int], size: tuple[int, int],
                          cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image j's top `cap` (query, class) pairs over the chunk's columns: (xyxy pixels, scores, category ids)."""
        scores = out.logits[j].float().sigmoid().cpu()[:, list(head.columns)]  # [Q, K]
        boxes = outputs.to_pixels(out.pred_boxes[j].float().cpu(), "image", *size)  # [Q, 4] xyxy, clipped
        kept_boxes, kept_scores, k = outputs.top_pairs(scores, boxes, cap)
        return kept_boxes, kept_scores, torch.as_tensor(cat_ids)[k]

    def _rehead(self, names: Sequence[str]) -> None:
        """Load the checkpoint again with a classifier of the task's classes (a new module, seeded init)."""
        from transformers import AutoConfig, AutoModelForObjectDetection

        before = len(self.model.config.id2label)
        config = AutoConfig.from_pretrained(self.folder, local_files_only=True)
        config.id2label = dict(enumerate(names))
        config.label2id = {n: i for i, n in enumerate(names)}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            model, info = AutoModelForObjectDetection.from_pretrained(
                self.folder, config=config, ignore_mismatched_sizes=True, local_files_only=True,
                output_loading_info=True)
        if info["missing_keys"] or info["unexpected_keys"]:
            raise UserError(f"--model {self.name}: re-sizing its classifier to {len(names)} classes left weights "
                            f"missing {sorted(info['missing_keys'])[:3]} or unexpected "
                            f"{sorted(info['unexpected_keys'])[:3]}; save the model again with save_pretrained")
        reinit = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
        device = next(self.module.parameters()).device
        self.module = HFDetector(model.to(device).eval())
        self.reheaded = Reheaded(checkpoint_classes=before, task_classes=len(names), reinitialised=reinit)


def load_closed_set(name: str, folder: Path) -> ClosedSetAdapter:
    """An hf:DIR closed-set detector and its image processor, offline; a weight missing from the file is refused."""
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    model = load_complete(name, folder, AutoModelForObjectDetection).eval()
    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, ImportError) as e:
        raise UserError(f"--model {name}: cannot load its image processor from {folder}: {e}") from None
    return ClosedSetAdapter(name, folder, model, processor)
