"""COCO box AP with pycocotools (the reference) or hotcoco (the fast default).

GLIP scores COCO and every ODinW task with pycocotools COCOeval, iouType bbox, maxDets 100, and reports
stats[0] (maskrcnn_benchmark/data/datasets/evaluation/coco/coco_eval.py). hotcoco runs the same
algorithm in Rust; tests/bench/metrics/test_metrics_coco.py checks that its 12 stats equal pycocotools' on
a generated 1000-image fixture (bench/testing/metrics.py) and on the edge cases of `with_edge_cases`. Boxes
are COCO xywh as exported by the runner (official +1 width); both libraries compute IoU on xywh without
a +1, exactly as the official evaluation does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.metrics import MetricResult, class_keys, library_version, nan_if_negative, quiet_library
from bench.metrics.detections import as_dicts, detection_array
from bench.util.errors import UserError

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def coco_bbox(
    gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], backend: str = "hotcoco"
) -> MetricResult:
    """The 12 COCO box stats x100 and per-class AP (IoU .50:.95, all areas, 100 detections)."""
    gt = gt_copy(gt)
    arr = detection_array(predictions, gt)
    dets = as_dicts(arr) if backend != "hotcoco" else []
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with quiet_library("pycocotools"):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets) if dets else _empty_results(COCO, gt)
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        library = library_version("pycocotools")
    elif backend == "hotcoco":
        import hotcoco

        with quiet_library("hotcoco"):
            coco_gt = hotcoco.COCO(gt)
            coco_dt = coco_gt.load_res(arr)  # the (N, 7) array as is: no dicts
            evaluator = hotcoco.COCOeval(coco_gt, coco_dt, "bbox")
            evaluator.run()
        library = library_version("hotcoco")
    else:  # evaluate() checks names; this guards direct calls
        raise UserError(f"coco_bbox backend must be 'hotcoco' or 'pycocotools', got {backend!r}")
    stats = np.asarray(evaluator.stats, dtype=float)[: len(STAT_NAMES)]
    values = {name: nan_if_negative(v) for name, v in zip(STAT_NAMES, stats)}
    cat_ids = evaluator.params.cat_ids if backend == "hotcoco" else evaluator.params.catIds
    per_class = per_class_ap(evaluator.eval["precision"], cat_ids, gt["categories"])
    return MetricResult(primary="AP", values=values, per_class=per_class, backend=backend, library=library)


def per_class_ap(
    precision: np.ndarray, cat_ids: Sequence[int], categories: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """AP x100 per category from the accumulated precision array; NaN for a class without ground truth.

    precision: [T, R, K, A, M] (pycocotools, hotcoco) or [T, R, K, A] (lvis-api), T IoU
    thresholds, R recall points, K categories in `cat_ids` order, A area ranges (0 = all), M maxDets
    (last = the largest). Entries of -1 mean 'no ground truth' and are left out of the mean.
    """
    p = np.asarray(precision, dtype=float)
    p = p[..., 0, -1] if p.ndim == 5 else p[..., 0]  # [T, R, K]
    keys = class_keys(categories)
    out: dict[str, float] = {}
    for k, cat_id in enumerate(cat_ids):
        valid = p[:, :, k][p[:, :, k] > -1]
        out[keys[int(cat_id)]] = 100.0 * float(valid.mean()) if valid.size else math.nan
    return out


def gt_copy(gt: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the ground truth that the libraries may annotate in place (they add 'ignore' and more)."""
    out = dict(gt)
    out["annotations"] = [dict(a) for a in gt["annotations"]]
    out["images"] = [dict(i) for i in gt["images"]]
    out["categories"] = [dict(c) for c in gt["categories"]]
    for i, ann in enumerate(out["annotations"]):
        missing = [k for k in ("id", "image_id", "category_id", "bbox", "area") if k not in ann]
        if missing:
            raise UserError(
                f"ground-truth annotation #{i} lacks {missing}; COCO annotations need id, image_id, "
                "category_id, bbox (xywh) and area"
            )
    return out


def clean_detections(predictions: Sequence[Mapping[str, Any]], gt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fresh detection dicts (the libraries mutate theirs), checked against the ground truth, entry by entry.

    The scorers use bench.metrics.detections.detection_array (the same checks on whole columns, ~10x
    faster); this path parses what it cannot (ids written as strings) and words every error message.

    Raises UserError for a malformed entry, an image id not in the ground truth (pycocotools would
    fail with a bare assert) or a category id not in it (the libraries would silently ignore it,
    which hides an off-by-one label mapping).
    """
    image_ids = {int(img["id"]) for img in gt["images"]}
    cat_ids = {int(c["id"]) for c in gt["categories"]}
    out: list[dict[str, Any]] = []
    for i, det in enumerate(predictions):
        try:
            image_id, cat_id = int(det["image_id"]), int(det["category_id"])
            x, y, w, h = (float(v) for v in det["bbox"])
            score = float(det["score"])
        except (KeyError, TypeError, ValueError) as err:
            if _holds_null(det):
                raise UserError(f"prediction #{i} has a null box or score (NaN or infinity when saved as JSON): "
                                f"{det!r}") from None
            raise UserError(
                f"prediction #{i} is not {{'image_id', 'category_id', 'bbox': [x, y, w, h], 'score'}}: "
                f"{det!r} ({err})"
            ) from None
        problem = _bad_numbers(det, (x, y, w, h), score)
        if problem:
            raise UserError(f"prediction #{i} {problem}: {det!r}")
        if image_id not in image_ids:
            raise UserError(f"prediction #{i} names image_id {image_id}, which is not in the ground truth")
        if cat_id not in cat_ids:
            raise UserError(
                f"prediction #{i} names category_id {cat_id}, which is not in the ground truth "
                f"(valid ids: {sorted(cat_ids)[:20]}{' ...' if len(cat_ids) > 20 else ''})"
            )
        out.append({"image_id": image_id, "category_id": cat_id, "bbox": [x, y, w, h], "score": score})
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bad_numbers(det: Mapping[str, Any], box: tuple[float, float, float, float], score: float) -> str:
    """What is wrong with a parsed detection's numbers ('' if nothing): a string or non-finite value, or a
    negative width or height, which the libraries would score without complaint."""
    for key in ("image_id", "category_id"):  # int() would truncate 1.5 to 1 and read true as 1
        v = det[key]
        if not _is_number(v) or (isinstance(v, float) and not v.is_integer()):
            return f"has {key} {v!r}, not an integer"
    if not _is_number(det["score"]):
        return f"has a score of type {type(det['score']).__name__}, not a number"
    if not all(_is_number(v) for v in det["bbox"]):
        return "has a bbox entry that is not a number"
    if not math.isfinite(score):
        return f"has a non-finite score {score}"
    if not all(math.isfinite(v) for v in box):
        return f"has a non-finite bbox coordinate {list(box)}"
    if box[2] < 0 or box[3] < 0:
        return f"has a negative bbox width or height (w={box[2]}, h={box[3]})"
    return ""


def _holds_null(det: Any) -> bool:
    """Whether a detection's score or a box coordinate is null (JSON's stand-in for NaN and infinity)."""
    if not isinstance(det, Mapping):
        return False
    box = det.get("bbox")
    return ("score" in det and det["score"] is None) or (isinstance(box, list) and None in box)


def _empty_results(coco_cls: type, gt: Mapping[str, Any]) -> Any:
    """A results object with no detections (pycocotools' loadRes cannot take an empty list)."""
    res = coco_cls()
    res.dataset = {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": []}
    res.createIndex()
    return res
