"""Training samples for the grounding loss: detection splits + a class prompt, and MDETR-style grounding.

A sample is one image through the official training transform (glip.transforms.train_transform: a
shorter side drawn from the model's `train_min_sizes`, the longer capped at `train_max_size`, a horizontal
flip with `flip_prob`, the caption unchanged), its boxes moved with the image, and one positive-map row per
box (the tokens of the box's phrase in the caption). `collate` pads a list of samples into an ImageBatch,
the captions and TrainTargets that GLIP.forward takes. The synthetic preset glip-synth trains at its one
scale (128, its test size), so its samples are the inference pixels.

Detection data (fine-tuning): the caption holds every class of the task in category-id order with the
task's prompt set, fixed order (official DATASETS.DISABLE_SHUFFLE True of the README fine-tuning
command); at training the names pass through `clean_name` (CAPTION_PROMPT at training,
maskrcnn_benchmark/engine/inference.py and maskrcnn_benchmark/data/datasets/od_to_grounding.py).
Grounding data (pre-training on the synthetic world): MDETR json entries, each image with its own
caption and per-box `tokens_positive` character spans.

Boxes follow the official legacy convention (width = x2 - x1 + 1): resizing scales each coordinate by
new/old size (BoxList.resize), flipping maps x to W - 1 - x (BoxList.transpose), and boxes left empty after
clipping are dropped (clip_to_image(remove_empty=True)).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.data.types import load_image_file
from bench.util.errors import UserError
from bench.util.io import read_json
from glip.structures import ImageBatch, TrainTarget
from glip.transforms import train_transform


@dataclass(frozen=True)
class TrainInput:
    """The training input pipeline's settings: shorter sides to draw from, the longer-side cap, the flip
    probability, the pixel mean / std (official AUGMENT.MULT_MIN_SIZE_TRAIN, MAX_SIZE_TRAIN,
    FLIP_PROB_TRAIN, INPUT.PIXEL_MEAN / PIXEL_STD)."""

    min_sizes: tuple[int, ...]
    max_size: int
    flip_prob: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, config: Any, flip_prob: float | None = None) -> TrainInput:
        """From a glip.config.GLIPConfig (flip_prob: replace the config's)."""
        return cls(tuple(config.train_min_sizes), config.train_max_size,
                   config.flip_prob if flip_prob is None else flip_prob, tuple(config.pixel_mean),
                   tuple(config.pixel_std))

    def as_dict(self) -> dict[str, Any]:
        """What a record states of the recipe (provenance)."""
        return {"train_min_sizes": list(self.min_sizes), "train_max_size": self.max_size,
                "flip_prob": self.flip_prob}


@dataclass
class TrainSample:
    """image: [3, h, w] normalised, unpadded; boxes in its pixels; positive_map [N, T] binary."""

    image: torch.Tensor
    image_size: tuple[int, int]
    original_size: tuple[int, int]
    caption: str
    target: TrainTarget
    offset_rows: torch.Tensor | None = None  # [max_len] the prompt-offset row per token (bench.data.prompt_anchor)


def make_sample(image: Image.Image, boxes_xyxy: torch.Tensor, positive_map: torch.Tensor, caption: str,
                pipeline: TrainInput, rng: random.Random, offset_rows: torch.Tensor | None = None) -> TrainSample:
    """The training transform (size and flip drawn from `rng`), boxes clipped to the image, empty ones dropped."""
    if boxes_xyxy.shape[0] != positive_map.shape[0]:
        raise ValueError(f"{boxes_xyxy.shape[0]} boxes but {positive_map.shape[0]} positive-map rows")
    pixels, boxes, original = train_transform(image, boxes_xyxy, pipeline.min_sizes, pipeline.max_size,
                                              pipeline.flip_prob, pipeline.mean, pipeline.std, rng)
    h, w = pixels.shape[1:]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h - 1)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return TrainSample(image=pixels, image_size=(h, w), original_size=original, caption=caption,
                       target=TrainTarget(boxes_xyxy=boxes[keep], positive_map=positive_map[keep].float()),
                       offset_rows=offset_rows)


def collate(samples: Sequence[TrainSample], size_divisibility: int = 32) -> tuple[ImageBatch, list[str], list[TrainTarget]]:
    """Zero-pad images bottom/right to a common size, a multiple of `size_divisibility` (official ImageList)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    d = max(1, size_divisibility)
    max_h = -(-max(s.image_size[0] for s in samples) // d) * d
    max_w = -(-max(s.image_size[1] for s in samples) // d) * d
    tensor = samples[0].image.new_zeros(len(samples), 3, max_h, max_w)  # [B, 3, H, W]
    for i, s in enumerate(samples):
        tensor[i, :, : s.image_size[0], : s.image_size[1]] = s.image
    batch = ImageBatch(tensor, [s.image_size for s in samples], [s.original_size for s in samples])
    return batch, [s.caption for s in samples], [s.target for s in samples]


ModelInputs = tuple[tuple[Any, ...], dict[str, Any]]  # (positional, keyword) arguments of one forward pass


class GroundingBatches:
    """A train view's batching for GLIP: TrainSamples -> GLIP.forward(images, captions, targets) on a device.

    Every train view (these, bench.models.hf.training.CaptionTrainSet) has `batch(samples, device)`, so the
    training loop never asks which model it trains.
    """

    size_divisibility: int = 32

    def batch(self, samples: Sequence[TrainSample], device: str) -> ModelInputs:
        images, captions, targets = collate(samples, self.size_divisibility)
        targets = [TrainTarget(t.boxes_xyxy.to(device), t.positive_map.to(device)) for t in targets]
        anchored = [s.offset_rows is not None for s in samples]
        if not any(anchored):
            return (images.to(device), captions, targets), {}
        if not all(anchored):
            raise ValueError("a batch mixes samples with and without prompt-offset rows")
        return (images.to(device), captions, targets), {"offset_rows": torch.stack([s.offset_rows for s in samples])}


class SampleList(GroundingBatches, torch.utils.data.Dataset):
    """Ready-made TrainSamples as a train view (tests, benchmarks)."""

    def __init__(self, samples: Sequence[TrainSample], size_divisibility: int = 32) -> None:
        self.samples = list(samples)
        self.size_divisibility = size_divisibility

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> TrainSample:
        return self.samples[index]


def usable_box(bbox: Sequence[float], width: int, height: int) -> bool:
    """Whether a COCO xywh box keeps an area once clipped to its image, in the official legacy corners
    (x2 = x + w - 1; BoxList.clip_to_image(remove_empty=True) drops the rest)."""
    x, y, w, h = bbox
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + w - 1, width - 1), min(y + h - 1, height - 1)
    return x2 > x1 and y2 > y1


def usable_images(dataset: Any) -> list[int]:
    """The ids of the images with at least one non-crowd box that has an area inside the image (the official
    COCODataset leaves the others out of training); how many boxes and images were dropped is logged once,
    and a split with none left is a UserError."""
    from bench.util.logs import get_logger

    keep, boxes, dropped, images_without = [], 0, 0, 0
    for img in dataset.images:
        anns = [a for a in dataset.annotations.get(img.id, []) if not a.get("iscrowd", 0)]
        good = sum(usable_box(a["bbox"], img.width, img.height) for a in anns)
        boxes += len(anns)
        dropped += len(anns) - good
        if good:
            keep.append(img.id)
        elif anns:
            images_without += 1
    where = f"{dataset.name}/{dataset.split} ({dataset.ann_file})"
    if not keep:
        raise UserError(f"{where} has no image with a usable box to train on ({len(dataset.images)} images, {boxes} "
                        f"non-crowd boxes, {dropped} of zero area or outside their image); pick a split with boxes")
    if dropped:
        get_logger("data").warning("%s: %d of %d boxes have no area inside their image and are dropped from training, "
                                   "as the official loader does; %d images are left without a box and skipped",
                                   where, dropped, boxes, images_without)
    return keep


class DetectionTrainSet(GroundingBatches, torch.utils.data.Dataset):
    """A detection split as grounding samples under one class prompt.

    class_positive_map: [K, T] binary, row k = tokens of the k-th category (category-id order, i.e. the
    order of `dataset.categories`). Images without boxes are left out (official training filters them).
    """

    def __init__(
        self, dataset: Any, caption: str, class_positive_map: torch.Tensor, pipeline: TrainInput, seed: int = 0,
        size_divisibility: int = 32, offset_rows: torch.Tensor | None = None,
    ) -> None:
        """offset_rows: [max_len] the caption's prompt-offset rows, when the offsets are class-anchored."""
        if class_positive_map.shape[0] != len(dataset.categories):
            raise ValueError(
                f"{class_positive_map.shape[0]} prompt rows for {len(dataset.categories)} categories of {dataset.name}"
            )
        self.dataset = dataset
        self.size_divisibility = size_divisibility
        self.caption = caption
        self.class_positive_map = class_positive_map
        self.offset_rows = offset_rows
        self.pipeline = pipeline
        self.rng = random.Random(seed)
        self.row_of = {int(c["id"]): i for i, c in enumerate(dataset.categories)}
        self.image_ids = usable_images(dataset)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> TrainSample:
        image_id = self.image_ids[index]
        boxes = self.dataset.boxes_xyxy(image_id)
        cats = self.dataset.category_ids(image_id)
        unknown = sorted(set(cats) - set(self.row_of))
        if unknown:
            raise UserError(f"image {image_id} of {self.dataset.name} has category ids {unknown} not in its categories")
        rows = torch.tensor([self.row_of[c] for c in cats], dtype=torch.long)
        return make_sample(self.dataset.load_image(image_id), boxes, self.class_positive_map[rows], self.caption,
                           self.pipeline, self.rng, self.offset_rows)


class SampledCaptionTrainSet(GroundingBatches, torch.utils.data.Dataset):
    """A detection split as grounding samples, each image under its own sampled caption (bench.data.od_captions):
    its classes plus sampled negatives within the token budget; a box's map row marks its class's tokens in
    that caption, and boxes of a class that did not fit are dropped (official check_for_positive_overflow).

    The caption draws come from the sampler's own seeded generator, the image transform's from `seed` as in
    DetectionTrainSet, so neither moves the other.
    """

    def __init__(self, dataset: Any, sampler: Any, tokenizer: Any, max_len: int, pipeline: TrainInput, seed: int = 0,
                 size_divisibility: int = 32, anchor: Any = None) -> None:
        """anchor: a bench.data.prompt_anchor.ClassAnchor when the prompt offsets are class-anchored (each
        sample then carries its caption's offset rows)."""
        self.dataset = dataset
        self.anchor = anchor
        self.sampler = sampler  # bench.data.od_captions.CaptionSampler over the dataset's categories
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.pipeline = pipeline
        self.size_divisibility = size_divisibility
        self.rng = random.Random(seed)
        self.image_ids = usable_images(dataset)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> TrainSample:
        from glip.prompts import positive_map

        image_id = self.image_ids[index]
        boxes = self.dataset.boxes_xyxy(image_id)
        cats = self.dataset.category_ids(image_id)
        drawn = self.sampler.sample(cats)
        row = {c: i for i, c in enumerate(drawn.category_ids)}
        class_map = positive_map(self.tokenizer, drawn.caption, [[s] for s in drawn.spans], self.max_len)  # [P, T]
        keep = torch.tensor([c in row for c in cats], dtype=torch.bool)
        rows = torch.tensor([row[c] for c in cats if c in row], dtype=torch.long)
        offset_rows = None
        if self.anchor is not None:
            ids = self.tokenizer(drawn.caption)["input_ids"]
            offset_rows = self.anchor.rows(ids, class_map, drawn.category_ids, self.max_len)
        return make_sample(self.dataset.load_image(image_id), boxes[keep], class_map[rows], drawn.caption,
                           self.pipeline, self.rng, offset_rows)


@dataclass
class GroundingEntry:
    """One MDETR-style entry: image file, caption, boxes (legacy xyxy) with their character spans."""

    image_path: Path
    caption: str
    boxes_xyxy: list[list[float]]
    spans: list[list[tuple[int, int]]]


def load_grounding_entries(json_path: str | Path, image_root: str | Path) -> list[GroundingEntry]:
    """Read an MDETR-style json: images[] with caption, annotations[] with bbox (xywh) and tokens_positive."""
    data = read_json(json_path)
    for key in ("images", "annotations"):
        if key not in data:
            raise UserError(f"{json_path} is not an MDETR-style grounding json: no '{key}' list")
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    entries = []
    for img in data["images"]:
        if "caption" not in img:
            raise UserError(f"{json_path}: image entry {img.get('id')} has no 'caption'")
        boxes, spans = [], []
        for ann in by_image.get(int(img["id"]), []):
            tokens = ann.get("tokens_positive")
            if not tokens:
                continue  # a box grounded to no words cannot be a positive for any token
            x, y, w, h = (float(v) for v in ann["bbox"])
            # legacy xywh -> xyxy (BoxList.convert in maskrcnn_benchmark/structures/bounding_box.py)
            boxes.append([x, y, x + w - 1, y + h - 1])
            spans.append([(int(s), int(e)) for s, e in tokens])
        if boxes:
            entries.append(GroundingEntry(Path(image_root) / img["file_name"], img["caption"], boxes, spans))
    return entries


class GroundingTrainSet(GroundingBatches, torch.utils.data.Dataset):
    """MDETR-style grounding entries as training samples (one caption per image, a map row per box)."""

    def __init__(
        self, entries: Sequence[GroundingEntry], tokenizer: Any, pipeline: TrainInput, seed: int = 0,
        max_len: int = 256, size_divisibility: int = 32,
    ) -> None:
        self.entries = list(entries)
        self.size_divisibility = size_divisibility
        self.tokenizer = tokenizer
        self.pipeline = pipeline
        self.max_len = max_len
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> TrainSample:
        from glip.prompts import positive_map

        e = self.entries[index]
        pmap = positive_map(self.tokenizer, e.caption, e.spans, max_len=self.max_len)  # [N, T]
        image = load_image_file(e.image_path)
        return make_sample(image, torch.tensor(e.boxes_xyxy), pmap, e.caption, self.pipeline, self.rng)
