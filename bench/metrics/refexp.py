"""Referring expression comprehension: RefCOCO/+/g accuracy and gRefCOCO's generalized rules.

Ground truth: one entry per expression, {"image_id": entry id, "phrases": [{"boxes": [[x1,y1,x2,y2], ...]}]}
(GroundingDataset.entities of an mdetr_refexp task; exactly one phrase, the whole expression).
Predictions: the grounding format (docs/formats.md), {"image_id", "boxes": [[ranked xyxy boxes]], "scores"}.

- rec_accuracy (RefCOCO, RefCOCO+, RefCOCOg): "Acc@0.5" is the share of expressions whose top-scoring box
  has IoU >= 0.5 with the referred box; "P@5" / "P@10" look at the top 5 / 10 boxes (MDETR's
  RefExpEvaluator reports precision at 1, 5, 10). MDETR's and GLIP's evaluator thresholds generalized IoU
  (GIoU <= IoU) rather than IoU; "Acc@0.5_giou" is that rule, for comparison with their numbers. An
  expression without a predicted box is a miss.
- grec_accuracy (gRefCOCO, Liu et al. CVPR 2023, GREC): boxes with score >= 0.7 are the prediction. A
  no-target expression is right when no box is kept; otherwise boxes and targets are matched one to one,
  greedily by highest IoU while >= 0.5, and the expression is right when F1 = 2TP / (2TP + FP + FN) is 1
  (every target found, no extra box). "Pr@F1=1" is the share of right expressions; "N-acc" the share of
  no-target expressions with no box kept, "T-acc" the share of target expressions with at least one.
  (mmdet's gRefCOCOMetric reads only an entry's first annotation, so its multi-target numbers can differ.)

IoU: continuous coordinates, no +1 (bench.metrics.flickr.box_iou).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.metrics import MetricResult
from bench.metrics.flickr import _boxes, _index_predictions, box_iou
from bench.util.errors import UserError

TOPK = (1, 5, 10)


def _targets(entry: Mapping[str, Any]) -> np.ndarray:
    phrases = entry.get("phrases") or []
    if len(phrases) != 1:
        raise UserError(f"referring-expression entry {entry.get('image_id')} must have exactly one phrase, got {len(phrases)}")
    return _boxes(phrases[0].get("boxes") or [], f"ground truth of expression {entry['image_id']}").reshape(-1, 4)


def _ranked(pred: Mapping[str, Any] | None, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """An expression's predicted boxes [N, 4] and scores [N], best first (none predicted: empty)."""
    if pred is None:
        raise UserError(f"no prediction for expression image_id {image_id}")
    if len(pred["boxes"]) != 1:
        raise UserError(f"prediction for expression {image_id} has {len(pred['boxes'])} phrases; expected 1")
    boxes = _boxes(pred["boxes"][0], f"predicted boxes of expression {image_id}").reshape(-1, 4)
    scores = np.asarray((pred.get("scores") or [[]])[0] or [math.inf] * len(boxes), dtype=float)
    return boxes, scores


def giou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Generalized IoU [N, M] of xyxy boxes a [N, 4], b [M, 4]: IoU - (hull - union) / hull (MDETR's rule)."""
    inter = np.prod(np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]),
                            0, None), axis=2)  # [N, M]
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    hull = np.prod(np.clip(np.maximum(a[:, None, 2:], b[None, :, 2:]) - np.minimum(a[:, None, :2], b[None, :, :2]),
                           0, None), axis=2)
    return np.where(hull > 0, iou - (hull - union) / np.where(hull > 0, hull, 1), iou)


def rec_accuracy(entries: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                 backend: str = "numpy", iou_thresh: float = 0.5) -> MetricResult:
    by_id = _index_predictions(predictions, entries)
    hits = {k: 0 for k in TOPK}
    giou_hits = 0
    for entry in entries:
        gt = _targets(entry)
        if len(gt) != 1:
            raise UserError(f"expression {entry['image_id']} has {len(gt)} target boxes; rec_accuracy needs one "
                            "(zero or several targets: metric grec_accuracy)")
        boxes, _ = _ranked(by_id.get(int(entry["image_id"])), int(entry["image_id"]))
        if not len(boxes):
            continue
        iou = box_iou(boxes, gt)[:, 0]  # [N]
        for k in TOPK:
            hits[k] += bool((iou[:k] >= iou_thresh).any())
        giou_hits += bool(giou(boxes[:1], gt)[0, 0] >= iou_thresh)
    n = len(entries)
    pct = (lambda h: 100.0 * h / n) if n else (lambda h: math.nan)
    values = {"Acc@0.5": pct(hits[1]), "P@5": pct(hits[5]), "P@10": pct(hits[10]), "Acc@0.5_giou": pct(giou_hits)}
    return MetricResult(primary="Acc@0.5", values=values, backend=backend, library="bench.metrics.refexp")


def grec_accuracy(entries: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                  backend: str = "numpy", iou_thresh: float = 0.5, score_thresh: float = 0.7) -> MetricResult:
    by_id = _index_predictions(predictions, entries)
    right = no_target = no_target_right = target = target_some = 0
    for entry in entries:
        gt = _targets(entry)
        boxes, scores = _ranked(by_id.get(int(entry["image_id"])), int(entry["image_id"]))
        kept = boxes[scores >= score_thresh]
        if not len(gt):
            no_target += 1
            no_target_right += not len(kept)
            right += not len(kept)
            continue
        target += 1
        target_some += bool(len(kept))
        tp = matched_pairs(kept, gt, iou_thresh)
        right += tp == len(gt) == len(kept)  # F1 = 1
    pct = lambda a, b: 100.0 * a / b if b else math.nan  # noqa: E731
    values = {"Pr@F1=1": pct(right, len(entries)), "N-acc": pct(no_target_right, no_target), "T-acc": pct(target_some, target)}
    return MetricResult(primary="Pr@F1=1", values=values, backend=backend, library="bench.metrics.refexp")


def matched_pairs(pred: np.ndarray, gt: np.ndarray, iou_thresh: float) -> int:
    """One-to-one matches, greedily by highest remaining IoU while it is >= iou_thresh (gRefCOCO)."""
    if not len(pred) or not len(gt):
        return 0
    iou = box_iou(pred, gt)  # [P, G]
    tp = 0
    for _ in range(min(iou.shape)):
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[i, j] < iou_thresh:
            break
        tp += 1
        iou[i, :], iou[:, j] = -1.0, -1.0
    return tp
