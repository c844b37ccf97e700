"""NMS-AP (OVDEval, Yao et al., AAAI 2024): AP after a label-blind suppression around each ground-truth box.

Plain AP rewards a detector that puts every label of the prompt on the same box: the right label's copy
is a true positive and the wrong ones only cost precision in *other* classes' rankings. OVDEval removes
that gain before scoring (their eval.py): in each image, for each ground-truth box (any category, crowd
included), the predictions whose IoU with it is > 0.5, whatever their label, are ranked by score; the first
is kept and the others are removed, unless another ground-truth box keeps them; predictions that overlap no
ground-truth box that much are kept. Then COCO AP (pycocotools' protocol) runs on what is left.

IoU is on xywh boxes without a +1, as OVDEval's. Ties: OVDEval takes the first of a reversed ascending
argsort, i.e. the *last* of equally-scored candidates in input order (numpy's default sort is stable for
the <= 16 candidates a box has in practice); this module does the same with a stable sort, for any count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.metrics import MetricResult, evaluate
from bench.metrics.detections import IMAGE, SCORE, detection_array

NAME = "nms-ap"
DEFINITION = ("NMS-AP (OVDEval, AAAI 2024): per image, of the predictions with IoU > 0.5 with a ground-truth "
              "box (any label) only the top-scored one is kept, then the base metric (COCO box AP)")
IOU = 0.5


def compute(gt: Mapping[str, Any], predictions: Any, backend: str, base: str = "coco_bbox") -> MetricResult:
    """The base metric (default COCO AP) of the predictions left by `suppress`."""
    arr = detection_array(predictions, gt)
    return evaluate(base, gt, suppress(arr, gt["annotations"]), backend=backend)


def suppress(arr: np.ndarray, annotations: Any, iou: float = IOU) -> np.ndarray:
    """The rows of `arr` ((N, 7), bench.metrics.detections) that OVDEval's suppression keeps, in input order."""
    boxes_by_image: dict[int, list[list[float]]] = {}
    for a in annotations:
        boxes_by_image.setdefault(int(a["image_id"]), []).append(list(a["bbox"]))
    removed = np.zeros(len(arr), dtype=bool)
    order = np.argsort(arr[:, IMAGE], kind="stable")
    image_ids, starts = np.unique(arr[order, IMAGE], return_index=True)
    for image_id, rows in zip(image_ids, np.split(order, starts[1:])):
        gts = boxes_by_image.get(int(image_id))
        if gts:
            removed[rows] = _removed_in_image(arr[rows], np.asarray(gts, dtype=np.float64), iou)
    return arr[~removed]


def _removed_in_image(dets: np.ndarray, gts: np.ndarray, iou: float) -> np.ndarray:
    """[P] bool: removed by some ground-truth box and kept by none."""
    over = iou_xywh(gts, dets[:, 1:5]) > iou  # [G, P]
    scores = dets[:, SCORE]
    rank = np.argsort(scores, kind="stable")[::-1]  # score descending, ties: the later one first
    kept = np.zeros(len(dets), dtype=bool)
    removed = np.zeros(len(dets), dtype=bool)
    for g in range(len(gts)):
        cands = rank[over[g, rank]]  # this box's candidates in rank order
        if cands.size:
            kept[cands[0]] = True
            removed[cands[1:]] = True
    return removed & ~kept


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of xywh boxes (no +1; 0 where the union is 0)."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.maximum(0.0, np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0][:, None], b[:, 0][None]))
    ih = np.maximum(0.0, np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1][:, None], b[:, 1][None]))
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)

