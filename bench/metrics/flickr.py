"""Flickr30K Entities phrase grounding: Recall@1/5/10 and the upper bound, overall and per phrase type.

The protocol is MDETR's `Flickr30kEntitiesRecallEvaluator` (datasets/flickr_eval.py), which GLIP copies
(maskrcnn_benchmark/data/datasets/evaluation/flickr/flickr_eval.py). Written here from that definition,
not from its code:

- Phrases without a ground-truth box (Flickr's "nobndbox"/"scene" phrases) are not scored.
- A phrase's predictions are its boxes ranked by score. The phrase is a hit at k when the best IoU
  between its top-k boxes and its ground truth is >= 0.5; the upper bound (UB) uses every box.
  A phrase with no predicted box is a miss at every k (GLIP appends a dummy [0,0,0,0] box, IoU 0).
- Any-box (merged=False, what GLIP reports): the ground truth is all of the phrase's boxes, so a
  box matching any one of them counts. Merged-box (merged=True): the phrase's boxes are replaced by
  their smallest enclosing box first.
- Recall is the fraction of hits, over all phrases ("R@1") and per phrase type ("R@1/people"); a
  phrase with several types counts towards each.

IoU convention: continuous coordinates, area = (x2 - x1) * (y2 - y1), no +1. Both MDETR's and
GLIP's flickr_eval.py compute IoU with a numpy port of torchvision's box_iou (no +1), even though
GLIP's detector boxes use the +1 convention elsewhere; the published recalls used this IoU, so we do
too. A zero-area union (degenerate boxes) counts as IoU 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.metrics import MetricResult, log
from bench.util.errors import UserError

TOPK = (1, 5, 10)
PHRASE_TYPES = ("people", "clothing", "bodyparts", "animals", "vehicles", "instruments", "scene", "other")


def flickr_recall(
    entries: Sequence[Mapping[str, Any]],
    predictions: Sequence[Mapping[str, Any]],
    merged: bool = False,
    iou_thresh: float = 0.5,
    backend: str = "hotcoco",
) -> MetricResult:
    """Recall@k (k = 1, 5, 10) and UB x100 for grounding predictions; see the module docstring.

    backend: recorded only; "hotcoco" and "numpy" both name this one implementation.
    """
    by_image = _index_predictions(predictions, entries)
    first_hit: list[float] = []  # per scored phrase: 0-based rank of its first matching box, inf if none
    phrase_types: list[list[str]] = []
    for entry in entries:
        image_id = int(entry["image_id"])
        phrases = entry["phrases"]
        scored = [i for i, p in enumerate(phrases) if len(p.get("boxes") or []) > 0]
        if not scored:
            continue
        pred = by_image.get(image_id)
        if pred is None:
            raise UserError(
                f"no grounding prediction for entry image_id {image_id} ({len(scored)} phrases to score)"
            )
        if len(pred["boxes"]) != len(phrases):
            raise UserError(
                f"prediction for image_id {image_id} has boxes for {len(pred['boxes'])} phrases; the entry has "
                f"{len(phrases)} (one ranked box list per phrase, in the entry's phrase order)"
            )
        for i in scored:
            gt_boxes = _boxes(phrases[i]["boxes"], f"ground truth of phrase {i} of image_id {image_id}")
            if merged:
                gt_boxes = enclosing_box(gt_boxes)
            ranked = _boxes(pred["boxes"][i], f"predicted boxes of phrase {i} of image_id {image_id}")
            first_hit.append(_first_hit(ranked, gt_boxes, iou_thresh))
            phrase_types.append([str(t) for t in phrases[i].get("types") or []])
    log.debug("flickr recall: %d phrases scored over %d entries", len(first_hit), len(entries))
    return _report(np.asarray(first_hit, dtype=float), phrase_types, merged, backend)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of xyxy boxes a [N, 4] and b [M, 4], continuous coordinates (no +1)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # [N]
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # [M]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def enclosing_box(boxes: np.ndarray) -> np.ndarray:
    """The smallest box [1, 4] containing every box of [G, 4] (merged-box protocol)."""
    return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])[None, :]


def _first_hit(ranked: np.ndarray, gt_boxes: np.ndarray, iou_thresh: float) -> float:
    """0-based rank of the first predicted box whose best IoU with any ground-truth box passes."""
    if len(ranked) == 0:
        return math.inf
    hits = np.flatnonzero(box_iou(ranked, gt_boxes).max(axis=1) >= iou_thresh)  # [N] -> ranks that match
    return float(hits[0]) if hits.size else math.inf


def _report(first_hit: np.ndarray, phrase_types: list[list[str]], merged: bool, backend: str) -> MetricResult:
    """R@k = share of phrases whose first hit is within the top k; UB = share with any hit."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, types in enumerate(phrase_types):
        for t in dict.fromkeys(types):
            groups[t].append(i)
    values: dict[str, float] = {}
    per_class: dict[str, float] = {}
    for suffix, idx in [("", np.arange(len(first_hit)))] + [
        (f"/{t}", np.asarray(groups[t])) for t in sorted(groups)
    ]:
        ranks = first_hit[idx]
        for k in TOPK:
            values[f"R@{k}{suffix}"] = 100.0 * float(np.mean(ranks < k)) if ranks.size else math.nan
        values[f"UB{suffix}"] = 100.0 * float(np.mean(np.isfinite(ranks))) if ranks.size else math.nan
        if suffix:
            per_class[suffix[1:]] = values[f"R@1{suffix}"]
    return MetricResult(
        primary="R@1",
        values=values,
        per_class=per_class,
        backend=backend,
        library=f"glip-bench flickr recall ({'merged' if merged else 'any'}-box)",
    )


def _boxes(value: Any, what: str) -> np.ndarray:
    """A list of [x1, y1, x2, y2] as an array [N, 4] (N may be 0)."""
    try:
        arr = np.asarray(value if value is not None else [], dtype=float)
    except (TypeError, ValueError) as err:
        raise UserError(f"{what}: expected a list of [x1, y1, x2, y2] boxes ({err})") from None
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4 or not np.isfinite(arr).all():
        raise UserError(f"{what}: expected a list of finite [x1, y1, x2, y2] boxes, got shape {arr.shape}")
    return arr


def _index_predictions(
    predictions: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]]
) -> dict[int, Mapping[str, Any]]:
    """image_id -> prediction, refusing duplicates, unknown ids and box lists not sorted by score."""
    known = {int(e["image_id"]) for e in entries}
    out: dict[int, Mapping[str, Any]] = {}
    for n, pred in enumerate(predictions):
        if "image_id" not in pred or "boxes" not in pred:
            raise UserError(
                f"grounding prediction #{n} needs 'image_id' and 'boxes' (one ranked list per phrase)"
            )
        image_id = int(pred["image_id"])
        if image_id not in known:
            raise UserError(
                f"grounding prediction #{n} names image_id {image_id}, which is not in the ground truth"
            )
        if image_id in out:
            raise UserError(f"two grounding predictions for image_id {image_id}")
        for i, scores in enumerate(pred.get("scores") or []):
            s = np.asarray(scores, dtype=float)
            if i < len(pred["boxes"]) and len(s) != len(pred["boxes"][i]):
                raise UserError(
                    f"image_id {image_id}, phrase {i}: {len(s)} scores for {len(pred['boxes'][i])} boxes"
                )
            if np.any(np.diff(s) > 0):
                raise UserError(
                    f"image_id {image_id}, phrase {i}: boxes must be sorted by score, highest first"
                )
        out[image_id] = pred
    return out
