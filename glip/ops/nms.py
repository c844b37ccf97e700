"""Greedy non-maximum suppression, plain and class-aware, in pure torch.

The official ops (`nms`, and `ml_nms` for the class-aware final NMS, maskrcnn_benchmark/csrc/cuda/nms.cu and
ml_nms.cu) suppress a
box when its IoU with a higher-scoring kept box is strictly greater than the threshold, with the
legacy +1 IoU. The official CPU fallback of `boxlist_ml_nms` returns per-class *local* indices
without mapping them back (maskrcnn_benchmark/structures/boxlist_ops.py, boxlist_ml_nms); here every index
refers to the input.

Greedy NMS is sequential by nature (a box's fate depends on the fate of every better box), so the
sorted boxes are processed in blocks of `_BLOCK`: the greedy order inside a block is resolved on
its small suppression matrix in a few vectorised rounds (see _greedy_keep), then the block's kept
boxes suppress the later boxes in one step. IoUs are computed only between kept boxes and
still-alive boxes (of the same label when class-aware); memory is O(_BLOCK * N), never N x N.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from glip.ops.boxes import box_iou

_BLOCK = 256


def _greedy_keep(over: Tensor, max_rounds: int = 16) -> Tensor:
    """Greedy NMS on a boolean [n, n] matrix, over[i, j] = box i (better) suppresses box j (i < j).

    Returns the bool [n] keep mask of the sequential greedy scan. Each round decides every box
    whose better overlapping boxes are all decided: suppressed if one of them is kept, else kept.
    Real detections need 1-8 rounds per block; a long chain (each box suppressing only the next)
    needs one round per link, so after `max_rounds` the rest is finished by the plain scan.
    """
    keep = ~over.any(dim=0)  # no better box overlaps it: kept
    decided = keep.clone()
    for _ in range(max_rounds):
        if bool(decided.all()):
            return keep
        undecided = (~decided).nonzero().squeeze(1)  # [U]
        cols = over[:, undecided]  # [n, U]
        suppressed = (cols & keep[:, None]).any(dim=0)  # [U] a kept box overlaps it
        waiting = (cols & ~decided[:, None]).any(dim=0)  # [U] an overlapping box is still open
        ready = ~suppressed & ~waiting  # every better overlapping box was suppressed
        keep[undecided[ready]] = True
        decided[undecided[suppressed | ready]] = True
    if not bool(decided.all()):
        _finish_by_scan(over, keep, decided)
    return keep


def _finish_by_scan(over: Tensor, keep: Tensor, decided: Tensor) -> None:
    """The textbook greedy scan over the still-undecided boxes, on Python bitmasks (in place).

    Only reached for long suppression chains; like the official ml_nms, whose host side scans
    the GPU-computed overlap bitmasks box by box.
    """
    undecided = (~decided).nonzero().squeeze(1)  # [U], in score order
    blocked = (over[:, undecided] & keep[:, None]).any(dim=0).tolist()  # [U] by an already kept box
    rows = np.packbits(over[undecided][:, undecided].cpu().numpy(), axis=1, bitorder="little")  # [U, U/8]
    masks = [int.from_bytes(row.tobytes(), "little") for row in rows]  # bit j: suppresses undecided j
    suppressed, kept = 0, []
    for j, mask in enumerate(masks):
        if not blocked[j] and not (suppressed >> j) & 1:
            kept.append(j)
            suppressed |= mask
    keep[undecided[torch.tensor(kept, dtype=torch.long, device=keep.device)]] = True


def _sorted_nms(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float,
                legacy: bool) -> Tensor:
    if boxes_xyxy.dim() != 2 or boxes_xyxy.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must have shape [N, 4], got {tuple(boxes_xyxy.shape)}")
    if scores.shape != boxes_xyxy.shape[:1]:
        raise ValueError(f"scores must have shape [{boxes_xyxy.shape[0]}], got {tuple(scores.shape)}")
    if labels is not None and labels.shape != scores.shape:
        raise ValueError(f"labels must have shape [{scores.shape[0]}], got {tuple(labels.shape)}")
    n = boxes_xyxy.shape[0]
    with torch.no_grad():
        # [N] best first; class-aware: grouped by label (ascending), best first within a label.
        # Labels never interact, so each label's greedy order is unchanged and a box can only
        # suppress boxes up to the end of its label's group.
        order = scores.argsort(descending=True, stable=True)
        if labels is not None:
            order = order[labels[order].argsort(stable=True)]
        boxes = boxes_xyxy[order]
        if boxes.dtype in (torch.float16, torch.bfloat16):
            boxes = boxes.float()  # the official kernels compute IoU in float32
        lab = labels[order] if labels is not None else None

        def overlaps(rows: Tensor, cols: Tensor) -> Tensor:
            """[R, C] bool: IoU > threshold (and same label when class-aware)."""
            over = box_iou(boxes[rows], boxes[cols], legacy=legacy) > iou_threshold
            if lab is not None:
                over &= lab[rows, None] == lab[None, cols]
            return over

        keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
        suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)  # by a kept box of an earlier block
        for start in range(0, n, _BLOCK):  # a loop over blocks of boxes, not over boxes
            end = min(start + _BLOCK, n)
            rows = start + (~suppressed[start:end]).nonzero().squeeze(1)  # [R] still alive in this block
            if rows.numel() == 0:
                continue
            later = rows[:, None] < rows[None, :]  # [R, R] only a better box suppresses a worse one
            kept = rows[_greedy_keep(overlaps(rows, rows) & later)]  # [K]
            keep[kept] = True
            reach = n if lab is None else int(torch.searchsorted(lab, lab[end - 1], right=True))
            cols = end + (~suppressed[end:reach]).nonzero().squeeze(1)  # [C] alive, maybe same label
            if cols.numel() > 0:
                suppressed[cols[overlaps(kept, cols).any(dim=0)]] = True
        kept_idx = order[keep].sort().values  # input order, then best first (ties: input order)
        return kept_idx[scores[kept_idx].argsort(descending=True, stable=True)]


def nms(boxes_xyxy: Tensor, scores: Tensor, iou_threshold: float, legacy: bool = True) -> Tensor:
    """Indices [K] (long) of the boxes kept by greedy NMS, sorted by score descending.

    A box is dropped when IoU > iou_threshold with a kept higher-scoring box (ties in score keep
    input order).
    """
    return _sorted_nms(boxes_xyxy, scores, None, iou_threshold, legacy)


def batched_nms(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float,
                legacy: bool = True) -> Tensor:
    """Class-aware NMS (the official ml_nms): boxes only suppress boxes of the same label.

    Returns indices [K] into the inputs, sorted by score descending.
    """
    return _sorted_nms(boxes_xyxy, scores, labels, iou_threshold, legacy)
