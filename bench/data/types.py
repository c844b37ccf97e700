"""Loaded data sets as plain values: detection (COCO / ODinW / LVIS json) and grounding (Flickr30K).

A `DetectionDataset` keeps the validated COCO-format dict (`coco`) untouched for the metrics, plus
indexed views for the runner: images in id order, categories in id order (with the name the plain prompt
uses), annotations per image. Box convention: `bbox` in the json is COCO xywh; `boxes_xyxy` returns the
official legacy corners (x2 = x + w - 1, maskrcnn_benchmark/structures/bounding_box.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.util.errors import UserError


@dataclass(frozen=True)
class ImageInfo:
    """One image file: its data-set id, name in the json, full path and size in pixels."""

    id: int
    file_name: str
    path: Path
    width: int
    height: int


MAX_ASPECT = 100  # the model resizes the long side to <= 1333 px: past 1:100 the short side is ~13 px or less
_warned_16bit: set[str] = set()


def load_image_file(path: Path, expected_size: tuple[int, int] | None = None):
    """Open an image as RGB PIL; a missing, unreadable, oversized (decompression bomb) or degenerate
    (aspect ratio past 1:MAX_ASPECT) file, or one whose size is not `expected_size` (width, height: the
    annotation's), raises a UserError naming it. A 16-bit image is scaled to 8 bits (convert("RGB") would
    clip it to white), with one warning."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(f"image file not found: {path} (is the data root right, and is the data set fully unpacked?)")
    try:
        with Image.open(path) as img:
            check_image_size(path, img.size, expected_size)
            return to_rgb(img, path)
    except Image.DecompressionBombError as e:
        raise UserError(f"image {path} is too large to decode: {e} (PIL's limit guards against decompression "
                        "bombs; shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if it is right)") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"cannot read image {path}: {e} (the file is corrupt or not an image)") from e


def check_image_size(path: Path, size: tuple[int, int], expected: tuple[int, int] | None) -> None:
    """The checks of load_image_file on an image's (width, height), before any pixel is decoded."""
    w, h = size
    if min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h):
        raise UserError(f"image {path} is {w}x{h} pixels: an aspect ratio past 1:{MAX_ASPECT} leaves the resized "
                        "image a few pixels wide; crop or pad it, or leave it out of the annotation file")
    if expected is not None and (w, h) != tuple(expected):
        raise UserError(f"image {path} is {w}x{h} pixels but its annotation says {expected[0]}x{expected[1]}: the "
                        "boxes would be in another frame; fix the annotation's width/height or use the original image")


def to_rgb(img, path: Path):
    """RGB of a PIL image; 16-bit (and 32-bit integer) grey levels are scaled to 8 bits, not clipped."""
    import numpy as np
    from PIL import Image

    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return img.convert("RGB")
    arr = np.asarray(img, dtype=np.int64)  # [H, W]
    top = 65535 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
    grey = np.clip(arr, 0, top) * 255 // top  # [H, W] in 0..255
    if not _warned_16bit:
        from bench.util.logs import get_logger

        get_logger("data").warning("image %s is %s (16-bit grey): scaled to 8 bits for the model (further such "
                                   "images are converted without a warning)", path, img.mode)
        _warned_16bit.add(str(path))
    return Image.fromarray(grey.astype(np.uint8)).convert("RGB")  # uint8 [H, W] -> mode L


@dataclass
class DetectionDataset:
    """A detection split.

    categories: COCO category dicts sorted by id, each with an added "prompt_name" (the name the
    plain prompt set uses: the YAML `classes` entry or the file name after `renames`, before the
    official clean_name). annotations: image id -> COCO annotation dicts (xywh). coco: the full
    validated json (LVIS files keep neg_category_ids / not_exhaustive_category_ids / frequency).
    """

    name: str
    split: str
    ann_file: Path
    images: list[ImageInfo]
    categories: list[dict[str, Any]]
    annotations: dict[int, list[dict[str, Any]]]
    coco: dict[str, Any]
    _by_id: dict[int, ImageInfo] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {img.id: img for img in self.images}

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_ids(self) -> list[int]:
        return [img.id for img in self.images]

    def image(self, image_id: int) -> ImageInfo:
        try:
            return self._by_id[image_id]
        except KeyError:
            raise UserError(f"image id {image_id} is not in {self.name}/{self.split} ({self.ann_file})") from None

    def load_image(self, image_id: int):
        """The image as an RGB PIL image (unreadable, or not the annotation's size -> UserError naming the file)."""
        info = self.image(image_id)
        return load_image_file(info.path, (info.width, info.height))

    def _gt(self, image_id: int) -> list[dict[str, Any]]:
        self.image(image_id)  # raises for an unknown id
        # the official COCODataset drops crowd boxes from the targets
        # (maskrcnn_benchmark/data/datasets/coco.py); the `coco` dict keeps them for the metric
        return [a for a in self.annotations.get(image_id, []) if not a.get("iscrowd", 0)]

    def boxes_xywh(self, image_id: int) -> torch.Tensor:
        """Non-crowd boxes of one image, [N, 4] float, COCO xywh as stored (continuous coordinates)."""
        anns = self._gt(image_id)
        return torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)

    def boxes_xyxy(self, image_id: int) -> torch.Tensor:
        """Non-crowd boxes of one image, [N, 4] float, legacy xyxy (x2 = x + w - 1)."""
        xywh = self.boxes_xywh(image_id)  # [N, 4]
        # official BoxList.convert("xyxy") with TO_REMOVE = 1 (maskrcnn_benchmark/structures/bounding_box.py)
        return torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], dim=1)

    def category_ids(self, image_id: int) -> list[int]:
        """Data-set category id of each box returned by boxes_xyxy, same order."""
        return [int(a["category_id"]) for a in self._gt(image_id)]

    def subset(self, image_ids: list[int]) -> DetectionDataset:
        """The same split restricted to `image_ids` (the coco dict too); order follows the data set."""
        wanted = set(image_ids)
        unknown = wanted - set(self._by_id)
        if unknown:
            raise UserError(
                f"{len(unknown)} image ids are not in {self.name}/{self.split}: {sorted(unknown)[:10]}"
            )
        coco = {k: v for k, v in self.coco.items() if k not in ("images", "annotations")}
        coco = copy.deepcopy(coco)
        coco["images"] = [copy.deepcopy(im) for im in self.coco["images"] if im["id"] in wanted]
        coco["annotations"] = [copy.deepcopy(a) for a in self.coco["annotations"] if a["image_id"] in wanted]
        return DetectionDataset(
            name=self.name,
            split=self.split,
            ann_file=self.ann_file,
            images=[img for img in self.images if img.id in wanted],
            categories=copy.deepcopy(self.categories),
            annotations={i: copy.deepcopy(a) for i, a in self.annotations.items() if i in wanted},
            coco=coco,
        )


@dataclass(frozen=True)
class Phrase:
    """One evaluable phrase of a caption: its Flickr30K Entities id, char spans in the caption,
    ground-truth boxes (xyxy as in the Entities XML) and phrase types (people, clothing, ...)."""

    phrase_id: str
    spans: list[tuple[int, int]]
    boxes_xyxy: list[list[float]]
    types: list[str]


@dataclass(frozen=True)
class GroundingSample:
    """One MDETR entry: an (image, sentence) pair. `id` is the MDETR entry id, which prediction
    files use as their image_id; phrases are in the entry's tokens_positive_eval order."""

    id: int
    image: ImageInfo
    caption: str
    phrases: list[Phrase]
    sentence_id: int = 0
    original_image_id: int = 0


@dataclass
class GroundingDataset:
    """A grounding split: unique images and one sample per evaluable sentence."""

    name: str
    split: str
    ann_file: Path
    images: list[ImageInfo]
    samples: list[GroundingSample]
    _by_id: dict[int, GroundingSample] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {s.id: s for s in self.samples}

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def entities(self) -> list[dict[str, Any]]:
        """Ground truth for the flickr_recall metric (docs/formats.md, section 2): one entry per sample,
        {"image_id": MDETR entry id, "phrases": [{"phrase_id", "boxes": [[x1,y1,x2,y2], ...], "types"}]}."""
        return [
            {
                "image_id": s.id,
                "phrases": [
                    {"phrase_id": p.phrase_id, "boxes": [list(b) for b in p.boxes_xyxy], "types": list(p.types)}
                    for p in s.phrases
                ],
            }
            for s in self.samples
        ]

    def sample(self, sample_id: int) -> GroundingSample:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise UserError(f"sample id {sample_id} is not in {self.name}/{self.split} ({self.ann_file})") from None

    def load_image(self, sample_id: int):
        """The image of one sample as RGB PIL (unreadable, or not the annotation's size -> UserError naming the file)."""
        info = self.sample(sample_id).image
        return load_image_file(info.path, (info.width, info.height))

    def subset(self, sample_ids: list[int]) -> GroundingDataset:
        wanted = set(sample_ids)
        unknown = wanted - set(self._by_id)
        if unknown:
            raise UserError(f"{len(unknown)} sample ids are not in {self.name}/{self.split}: {sorted(unknown)[:10]}")
        samples = [s for s in self.samples if s.id in wanted]
        used = {s.image.id for s in samples}
        return GroundingDataset(self.name, self.split, self.ann_file, [i for i in self.images if i.id in used], samples)
