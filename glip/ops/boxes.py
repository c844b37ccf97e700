"""Box formats, areas, IoU and GIoU in pure torch.

Every function takes `legacy`: True (the default) is the official maskrcnn_benchmark convention
(maskrcnn_benchmark/structures/bounding_box.py, BoxList), where a box covering pixels x1..x2 has width x2 - x1
+ 1 (`TO_REMOVE = 1`).
`legacy=False` is the continuous convention (width x2 - x1) used by torchvision and COCO tools.
All functions are differentiable and work on any device and float dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _to_remove(legacy: bool) -> float:
    return 1.0 if legacy else 0.0


def _check_boxes(boxes: Tensor, name: str) -> None:
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {tuple(boxes.shape)}")


def xywh_to_xyxy(boxes: Tensor, legacy: bool = True) -> Tensor:
    """[N, 4] (x, y, w, h) -> [N, 4] (x1, y1, x2, y2); legacy: x2 = x + w - 1."""
    _check_boxes(boxes, "boxes")
    x, y, w, h = boxes.unbind(-1)
    r = _to_remove(legacy)
    return torch.stack((x, y, x + w - r, y + h - r), dim=-1)


def xyxy_to_xywh(boxes: Tensor, legacy: bool = True) -> Tensor:
    """[N, 4] (x1, y1, x2, y2) -> [N, 4] (x, y, w, h); legacy: w = x2 - x1 + 1 (the official COCO export)."""
    _check_boxes(boxes, "boxes")
    x1, y1, x2, y2 = boxes.unbind(-1)
    r = _to_remove(legacy)
    return torch.stack((x1, y1, x2 - x1 + r, y2 - y1 + r), dim=-1)


def box_area(boxes_xyxy: Tensor, legacy: bool = True) -> Tensor:
    """[N, 4] -> [N]; legacy area (x2 - x1 + 1)(y2 - y1 + 1) as BoxList.area()."""
    _check_boxes(boxes_xyxy, "boxes_xyxy")
    r = _to_remove(legacy)
    return (boxes_xyxy[:, 2] - boxes_xyxy[:, 0] + r) * (boxes_xyxy[:, 3] - boxes_xyxy[:, 1] + r)


def _inter_union(a: Tensor, b: Tensor, legacy: bool) -> tuple[Tensor, Tensor]:
    """Pairwise intersection and union areas, both [N, M]."""
    _check_boxes(a, "a_xyxy")
    _check_boxes(b, "b_xyxy")
    r = _to_remove(legacy)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    wh = (rb - lt + r).clamp(min=0)  # [N, M, 2]
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a, legacy)[:, None] + box_area(b, legacy)[None, :] - inter
    return inter, union


def box_iou(a_xyxy: Tensor, b_xyxy: Tensor, legacy: bool = True) -> Tensor:
    """Pairwise IoU [N, M] (official boxlist_iou when legacy)."""
    inter, union = _inter_union(a_xyxy, b_xyxy, legacy)
    return inter / union


def generalized_box_iou(a_xyxy: Tensor, b_xyxy: Tensor, legacy: bool = True) -> Tensor:
    """Pairwise generalized IoU [N, M]: IoU - (enclosing - union) / enclosing.

    The enclosing box uses the same width convention as the IoU. (The official training loss uses
    its own element-wise, non-legacy variant: see glip.losses.giou_loss.)
    """
    inter, union = _inter_union(a_xyxy, b_xyxy, legacy)
    r = _to_remove(legacy)
    lt = torch.minimum(a_xyxy[:, None, :2], b_xyxy[None, :, :2])  # [N, M, 2]
    rb = torch.maximum(a_xyxy[:, None, 2:], b_xyxy[None, :, 2:])  # [N, M, 2]
    wh = (rb - lt + r).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return inter / union - (enclosing - union) / enclosing


def clip_boxes(boxes_xyxy: Tensor, height: int, width: int, legacy: bool = True) -> Tensor:
    """Clamp corners into the image: x in [0, width - 1] when legacy (official clip_to_image)."""
    _check_boxes(boxes_xyxy, "boxes_xyxy")
    r = _to_remove(legacy)
    x = boxes_xyxy[:, 0::2].clamp(min=0, max=width - r)  # [N, 2] (x1, x2)
    y = boxes_xyxy[:, 1::2].clamp(min=0, max=height - r)  # [N, 2] (y1, y2)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=-1)


def clip_boxes_per_image(boxes_xyxy: Tensor, image_sizes: list[tuple[int, int]] | tuple[tuple[int, int], ...],
                         legacy: bool = True) -> Tensor:
    """clip_boxes for a batch: boxes [B, K, 4], image b clamped into its own (height, width) image_sizes[b]."""
    if boxes_xyxy.dim() != 3 or boxes_xyxy.shape[-1] != 4 or boxes_xyxy.shape[0] != len(image_sizes):
        raise ValueError(f"boxes_xyxy must have shape [{len(image_sizes)}, K, 4] (one row per image size), "
                         f"got {tuple(boxes_xyxy.shape)}")
    r = _to_remove(legacy)
    limits = boxes_xyxy.new_tensor([[w - r, h - r, w - r, h - r] for h, w in image_sizes])  # [B, 4]
    return torch.minimum(boxes_xyxy.clamp(min=0), limits[:, None, :])
