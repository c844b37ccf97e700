"""Precision, recall and F1 at one IoU (0.5 and 0.95), at a fixed score threshold and at the best one.

For detectors without usable scores (generative VLM detectors report boxes; Rex-Omni gives only these
numbers) and for scored ones at an operating point. Matching is COCO's at a single IoU threshold, with no
per-image cap: per image and category, detections in score order (ties: input order) each take the
unmatched ground truth of that category with the highest IoU >= t; a detection that matches none but
overlaps a crowd region by IoU >= t is ignored (neither true nor false positive), and crowd regions are not
objects to find. Then over the split: P = TP / (TP + FP) (NaN when nothing passes the threshold),
R = TP / objects, F1 = 2PR / (P + R) (0 when P + R = 0).

Values (0-100): P50, R50, F1_50, P95, R95, F1_95 at `score_threshold` (default 0.5); F1max50 and F1max95,
the best F1 over every threshold on the split scored, with the score that gives it (score_F1max50,
score_F1max95, on the detector's 0-1 scale). The best F1 of a test split is an oracle's operating point:
`glip-bench score --run TEST --metric f1 --f1-threshold-from VAL` scores test at the threshold that gave
the best F1 on a validation run of the same model (bench.runs.operating_point).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.metrics import MetricResult
from bench.metrics.detections import CATEGORY, IMAGE, SCORE, detection_array
from bench.metrics.nms_ap import iou_xywh

NAME = "f1"
DEFINITION = ("precision / recall / F1 at IoU 0.5 and 0.95 (COCO matching, no per-image cap) at a fixed score "
              "threshold, and the best F1 over thresholds with its score")
IOUS = {"50": 0.5, "95": 0.95}
TP, FP, IGNORED = 1, 0, -1


def compute(gt: Mapping[str, Any], predictions: Any, backend: str = "numpy",
            score_threshold: float = 0.5) -> MetricResult:
    """The values of the module docstring; `backend` is recorded only (this is our own numpy code)."""
    arr = detection_array(predictions, gt)
    values: dict[str, float] = {}
    for key, iou in IOUS.items():
        outcome = match(arr, gt["annotations"], iou)
        n_obj = sum(1 for a in gt["annotations"] if not a.get("iscrowd"))
        p, r, f = prf(outcome, arr[:, SCORE], n_obj, score_threshold)
        best_f, best_s = best_f1(outcome, arr[:, SCORE], n_obj)
        values.update({f"P{key}": p, f"R{key}": r, f"F1_{key}": f, f"F1max{key}": best_f, f"score_F1max{key}": best_s})
    return MetricResult(primary="F1_50", values=values, backend=backend, library="bench.metrics.f1 (numpy)")


def match(arr: np.ndarray, annotations: Any, iou: float) -> np.ndarray:
    """[N] int8: TP (1), FP (0) or IGNORED (-1) for each detection row at IoU threshold `iou`."""
    gts: dict[tuple[int, int], list[tuple[list[float], bool]]] = {}
    for a in annotations:
        gts.setdefault((int(a["image_id"]), int(a["category_id"])), []).append((list(a["bbox"]), bool(a.get("iscrowd"))))
    outcome = np.full(len(arr), FP, dtype=np.int8)
    keys = arr[:, [IMAGE, CATEGORY]]
    order = np.lexsort((np.arange(len(arr)), -arr[:, SCORE], keys[:, 1], keys[:, 0]))
    if not len(order):
        return outcome
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]).any(axis=1)])
    for rows in np.split(order, starts[1:]):
        group = gts.get((int(arr[rows[0], IMAGE]), int(arr[rows[0], CATEGORY])))
        if group:
            outcome[rows] = _match_group(arr[rows, 1:5], group, iou)
    return outcome


def _match_group(boxes: np.ndarray, group: list[tuple[list[float], bool]], iou: float) -> np.ndarray:
    """Outcomes of one (image, category)'s detections, already in score order."""
    gt_boxes = np.asarray([b for b, _ in group], dtype=np.float64)
    crowd = np.asarray([c for _, c in group])
    ious = iou_xywh(boxes, gt_boxes)  # [D, G]
    taken = np.zeros(len(group), dtype=bool)
    out = np.full(len(boxes), FP, dtype=np.int8)
    for d in range(len(boxes)):
        free = np.where(~taken & ~crowd & (ious[d] >= iou), ious[d], -1.0)
        g = int(np.argmax(free))
        if free[g] >= 0:
            taken[g] = True
            out[d] = TP
        elif (crowd & (ious[d] >= iou)).any():
            out[d] = IGNORED
    return out


def prf(outcome: np.ndarray, scores: np.ndarray, n_obj: int, threshold: float) -> tuple[float, float, float]:
    """Precision, recall, F1 (0-100) of the detections scored >= threshold."""
    kept = scores >= threshold
    tp, fp = int((outcome[kept] == TP).sum()), int((outcome[kept] == FP).sum())
    p = 100.0 * tp / (tp + fp) if tp + fp else float("nan")
    r = 100.0 * tp / n_obj if n_obj else float("nan")
    return p, r, _f1(p, r)


def best_f1(outcome: np.ndarray, scores: np.ndarray, n_obj: int) -> tuple[float, float]:
    """The highest F1 (0-100) over score thresholds, and the threshold (a detection score) that gives it."""
    use = outcome != IGNORED
    s, o = scores[use], outcome[use]
    if not len(s) or not n_obj:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="stable")
    s, o = s[order], o[order]
    tp = np.cumsum(o == TP)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold keeps every detection of equal score
    tp, n, s = tp[last], np.arange(1, len(o) + 1)[last], s[last]
    f = 2.0 * tp / (n + n_obj)  # 2PR / (P + R) with P = tp / n, R = tp / n_obj
    best = int(np.argmax(f))
    return 100.0 * float(f[best]), float(s[best])


def _f1(p: float, r: float) -> float:
    if np.isnan(p) or np.isnan(r):
        return 0.0 if np.isnan(p) and not np.isnan(r) else float("nan")
    return 2 * p * r / (p + r) if p + r else 0.0
