"""Image preprocessing (official maskrcnn_benchmark/data/transforms/build.py): RGB PIL -> resize (shorter side
min_size, longer <= max_size, PIL
bilinear) -> BGR x255 -> normalise with BGR mean/std -> zero-pad bottom/right to a multiple of 32.
Training adds a random shorter-side size and a horizontal flip that moves the boxes with the image.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from glip.structures import ImageBatch

ImageLike = Image.Image | np.ndarray


def to_rgb(image: ImageLike) -> Image.Image:
    """A PIL RGB image from a PIL image of any mode or an array [H,W], [H,W,1], [H,W,3], [H,W,4].

    Grayscale and palette images are expanded, RGBA/LA drop alpha (PIL convert); arrays must be uint8
    (0..255) or float in [0, 1]. Anything else raises ValueError naming what was received.
    """
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f"image array must be [H,W], [H,W,1], [H,W,3] or [H,W,4]; got shape {arr.shape}")
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.floating) or arr.min() < 0 or arr.max() > 1:
                raise ValueError(f"image array must be uint8 or float in [0, 1]; got {arr.dtype} with range "
                                 f"[{arr.min()}, {arr.max()}]")
            arr = (arr * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    raise ValueError(f"expected a PIL image or a numpy array, got {type(image).__name__}")


def resized_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(out_h, out_w) of official Resize.get_size: shorter side -> min_size unless the longer would exceed
    max_size, in which case shorter side -> round(max_size * short / long); the longer side is truncated."""
    size = min_size
    short, long = float(min(width, height)), float(max(width, height))
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize(image: Image.Image, min_size: int, max_size: int) -> Image.Image:
    out_h, out_w = resized_size(image.width, image.height, min_size, max_size)
    if (out_h, out_w) == (image.height, image.width):
        return image
    return image.resize((out_w, out_h), Image.BILINEAR)


def normalize(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB PIL -> [3,H,W] float: channels reversed to BGR, x255, (x - mean) / std (TO_BGR255; official
    transforms.py, Normalize)."""
    arr = np.asarray(image, dtype=np.float32)[:, :, ::-1].copy()  # [H,W,3] BGR in 0..255
    t = torch.from_numpy(arr).permute(2, 0, 1)  # [3,H,W]
    return (t - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def pad_batch(tensors: list[torch.Tensor], divisibility: int = 32) -> torch.Tensor:
    """list of [3,H_i,W_i] -> [B,3,H,W] zero-padded bottom/right, H and W rounded up to `divisibility`."""
    h = max(t.shape[1] for t in tensors)
    w = max(t.shape[2] for t in tensors)
    h = (h + divisibility - 1) // divisibility * divisibility
    w = (w + divisibility - 1) // divisibility * divisibility
    out = tensors[0].new_zeros(len(tensors), 3, h, w)
    for i, t in enumerate(tensors):
        out[i, :, : t.shape[1], : t.shape[2]] = t
    return out


def hflip_boxes(boxes_xyxy: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror legacy xyxy boxes in an image of `width` pixels: x1' = W - x2 - 1, x2' = W - x1 - 1
    (official BoxList.transpose, TO_REMOVE = 1)."""
    x1, y1, x2, y2 = boxes_xyxy.unbind(-1)
    return torch.stack((width - x2 - 1, y1, width - x1 - 1, y2), dim=-1)


def resize_and_pad(images: Sequence[ImageLike], min_size: int, max_size: int, mean: Sequence[float],
                   std: Sequence[float], divisibility: int = 32) -> ImageBatch:
    """The inference transform of a list of images -> ImageBatch (sizes recorded for mapping boxes back)."""
    if len(images) == 0:
        raise ValueError("no images given")
    tensors, sizes, originals = [], [], []
    for image in images:
        rgb = to_rgb(image)
        originals.append((rgb.height, rgb.width))
        rgb = resize(rgb, min_size, max_size)
        sizes.append((rgb.height, rgb.width))
        tensors.append(normalize(rgb, mean, std))
    return ImageBatch(pad_batch(tensors, divisibility), sizes, originals)


def train_transform(image: ImageLike, boxes_xyxy: torch.Tensor, min_sizes: Sequence[int], max_size: int,
                    flip_prob: float, mean: Sequence[float], std: Sequence[float],
                    rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The one training transform (official build_transforms(is_train=True)): resize the shorter side to a size
    drawn from `min_sizes` with the longer side capped at `max_size` (official Resize with
    AUGMENT.MULT_MIN_SIZE_TRAIN / MAX_SIZE_TRAIN), boxes scaled with the image (BoxList.resize), then a
    horizontal flip with probability `flip_prob` in the resized image, the caption unchanged (official
    RandomHorizontalFlip, BoxList.transpose with TO_REMOVE = 1), then BGR x255 normalisation.

    rng: the draws, in the official order (size, then flip); a single size is not drawn (nothing to choose).
    Returns (image [3,h,w] normalised, boxes [N,4] legacy xyxy in the resized image, original (H, W)).
    Batch the images with pad_batch.
    """
    rng = rng or random
    rgb = to_rgb(image)
    orig_w, orig_h = rgb.width, rgb.height
    sizes = list(min_sizes)
    rgb = resize(rgb, rng.choice(sizes) if len(sizes) > 1 else sizes[0], max_size)
    ratio_w, ratio_h = rgb.width / orig_w, rgb.height / orig_h
    boxes = boxes_xyxy.to(torch.float32).reshape(-1, 4) * torch.tensor([ratio_w, ratio_h, ratio_w, ratio_h])
    if rng.random() < flip_prob:
        rgb = rgb.transpose(Image.FLIP_LEFT_RIGHT)
        boxes = hflip_boxes(boxes, rgb.width)
    return normalize(rgb, mean, std), boxes, (orig_h, orig_w)
