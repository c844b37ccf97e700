"""Greedy non-maximum suppression, plain and class-aware, in pure torch.

The official ops (`nms`, and `ml_nms` for the class-aware final NMS, glip-official.md 8) suppress a
box when its IoU with a higher-scoring kept box is strictly greater than the threshold, with the
legacy +1 IoU. The official CPU fallback of `boxlist_ml_nms` returns per-class *local* indices
without mapping them back (glip-official.md 8); here every index refers to the input.

Greedy NMS is sequential by nature. Instead of a Python loop over boxes we resolve it on the
suppression matrix: a box is decided "suppressed" as soon as a kept box overlaps it, and "kept"
once every higher-scoring box that overlaps it is decided suppressed. Each round decides at least
the first undecided box, and in practice a handful of rounds decide everything.
"""

from __future__ import annotations

import torch
from torch import Tensor

from glip.ops.boxes import box_iou


def _greedy_keep(over: Tensor) -> Tensor:
    """Greedy NMS on a boolean [N, N] matrix, over[i, j] = box i (higher score) suppresses box j (i < j).

    Returns a bool [N] keep mask, exactly what the sequential greedy scan would keep.
    """
    has_pred = over.any(dim=0)  # [N] some higher-scoring box overlaps it
    keep = ~has_pred
    decided = keep.clone()
    while not bool(decided.all()):
        undecided = (~decided).nonzero().squeeze(1)  # [U]
        cols = over[:, undecided]  # [N, U]
        suppressed = (cols & keep[:, None]).any(dim=0)  # [U] a kept box overlaps it
        waiting = (cols & ~decided[:, None]).any(dim=0)  # [U] an overlapping box is still open
        ready = ~suppressed & ~waiting  # every overlapping box is decided and suppressed
        keep[undecided[ready]] = True
        decided[undecided[suppressed | ready]] = True
    return keep


def _sorted_nms(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float,
                legacy: bool) -> Tensor:
    if boxes_xyxy.dim() != 2 or boxes_xyxy.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must have shape [N, 4], got {tuple(boxes_xyxy.shape)}")
    if scores.shape != boxes_xyxy.shape[:1]:
        raise ValueError(f"scores must have shape [{boxes_xyxy.shape[0]}], got {tuple(scores.shape)}")
    if labels is not None and labels.shape != scores.shape:
        raise ValueError(f"labels must have shape [{scores.shape[0]}], got {tuple(labels.shape)}")
    n = boxes_xyxy.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes_xyxy.device)
    with torch.no_grad():
        order = scores.argsort(descending=True, stable=True)  # [N] highest score first
        b = boxes_xyxy[order]
        if b.dtype in (torch.float16, torch.bfloat16):
            b = b.float()  # the official kernels compute IoU in float32
        over = box_iou(b, b, legacy=legacy) > iou_threshold  # [N, N]
        if labels is not None:
            lab = labels[order]
            over &= lab[:, None] == lab[None, :]  # class-aware: only same-label boxes compete
        over = over.triu(diagonal=1)  # only a higher-scoring box suppresses a lower one
        keep = _greedy_keep(over)
    return order[keep]


def nms(boxes_xyxy: Tensor, scores: Tensor, iou_threshold: float, legacy: bool = True) -> Tensor:
    """Indices [K] (long) of the boxes kept by greedy NMS, sorted by score descending.

    A box is dropped when IoU > iou_threshold with a kept higher-scoring box (ties in score keep
    input order). Memory is O(N^2): meant for the <= a few thousand candidates of one image.
    """
    return _sorted_nms(boxes_xyxy, scores, None, iou_threshold, legacy)


def batched_nms(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float,
                legacy: bool = True) -> Tensor:
    """Class-aware NMS (the official ml_nms): boxes only suppress boxes of the same label.

    Returns indices [K] into the inputs, sorted by score descending.
    """
    return _sorted_nms(boxes_xyxy, scores, labels, iou_threshold, legacy)
