"""Model outputs -> per-class scored boxes in original pixels -> the harness's prediction formats.

Every family is scored the same way: a score per (query, class) pair, the top `cap` pairs of an image
kept with no score threshold (AP needs the low-scoring tail), boxes mapped from the model's normalised
(cx, cy, w, h) to original pixels. COCO boxes are written as x, y, x2 - x1, y2 - y1: these models
predict continuous coordinates, without GLIP's legacy +1 pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.metrics.detections import as_dicts
from bench.models.base import detection_rows


def to_pixels(boxes_cxcywh: torch.Tensor, frame: str, width: int, height: int, clip: bool = True) -> torch.Tensor:
    """Normalised [N, 4] (cx, cy, w, h) -> xyxy in the original image's pixels, clipped to it unless not `clip`.

    frame "image": relative to the (resized) image itself; "square": relative to the image padded at the
    bottom/right to a square of its longer side (OWLv2).
    """
    if frame not in ("image", "square"):
        raise ValueError(f"unknown box frame {frame!r}")
    sx, sy = (width, height) if frame == "image" else (max(width, height),) * 2
    cx, cy, w, h = boxes_cxcywh.float().unbind(-1)
    xyxy = torch.stack([(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx, (cy + h / 2) * sy], dim=-1)
    return clip_to(xyxy, width, height) if clip else xyxy


def clip_to(boxes_xyxy: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[N, 4] xyxy clipped to a width x height image (a new tensor)."""
    out = boxes_xyxy.clone()
    out[:, 0::2] = out[:, 0::2].clamp(0, width)
    out[:, 1::2] = out[:, 1::2].clamp(0, height)
    return out


def caption_scores(logits: torch.Tensor, token_map: torch.Tensor) -> torch.Tensor:
    """[Q, T] token logits + [P, T] phrase map -> [Q, P]: the mean token probability over each phrase's tokens."""
    probs = logits.float().sigmoid().nan_to_num(0.0)
    t = min(probs.shape[-1], token_map.shape[-1])
    tmap = token_map[:, :t].to(probs.device)
    return probs[:, :t] @ tmap.T / tmap.sum(-1).clamp(min=1.0)


def top_pairs(scores: torch.Tensor, boxes: torch.Tensor, cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[Q, C] scores + [Q, 4] boxes -> the top `cap` (query, class) pairs: (boxes [K, 4], scores [K], classes [K])."""
    flat = scores.reshape(-1)
    k = min(cap, flat.numel())
    top, idx = flat.topk(k)
    order = torch.argsort(top, descending=True, stable=True)
    top, idx = top[order], idx[order]
    c = scores.shape[1]
    return boxes[idx // c], top, idx % c


def class_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-wise NMS (the project's own op, continuous-coordinate IoU); kept boxes best first."""
    from glip.ops.nms import batched_nms

    keep = batched_nms(boxes, scores, labels, iou, legacy=False)
    return boxes[keep], scores[keep], labels[keep]


def coco_results(image_id: int, boxes_xyxy: torch.Tensor, scores: torch.Tensor, category_ids: torch.Tensor
                 ) -> list[dict[str, Any]]:
    """COCO result dicts (xywh in original pixels) of one image, in the given order."""
    return as_dicts(coco_rows(image_id, boxes_xyxy, scores, category_ids))


def coco_rows(image_id: int, boxes_xyxy: torch.Tensor, scores: torch.Tensor, category_ids: torch.Tensor
              ) -> np.ndarray:
    """`coco_results` as (N, 7) rows (bench.models.base.detection_rows): xywh, w = x2 - x1 in the boxes' dtype."""
    xy = boxes_xyxy[:, :2]
    wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
    return detection_rows(image_id, torch.cat([xy, wh], dim=1), scores, category_ids)
