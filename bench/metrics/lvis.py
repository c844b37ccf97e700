"""LVIS box AP (standard, 300 detections per image) and Fixed AP (10k detections per class).

Both run the federated LVIS evaluation: a detection of category c in an image is scored only when c is
annotated there (positive) or listed in the image's neg_category_ids; unmatched detections of a category
in not_exhaustive_category_ids are not false positives; APr/APc/APf average over the categories'
frequency groups (lvis-api, lvis/eval.py).

- lvis_bbox: lvis-api's standard protocol, the top 300 detections per image by score.
- lvis_fixed_ap: Fixed AP (Dave et al. 2021, "Evaluating Large-Vocabulary Object Detectors"), the
  number MDETR and GLIP report on LVIS minival/val: no per-image cap; instead each category keeps
  its 10,000 top-scored detections over the whole split, then the same evaluation runs with
  max_dets=-1 (no limit). The selection is `top_per_class`; ties keep input order, as MDETR's
  `sorted(..., reverse=True)[:topk]` does.

Backends: "lvis" is lvis-api 0.5.3, the reference; "hotcoco" (the default, Rust) runs the same matching
with lvis_style=True, checked equal to lvis-api in tests/bench/metrics/test_metrics_lvis.py. It ignores a
ground truth's 'ignore' flag, which lvis-api honours: such a file is scored by lvis-api (`_evaluate`).
lvis-api 0.5.3 calls `np.float`, which numpy >= 1.24 removed; `numpy_float_alias` restores it only
while lvis-api runs.

The official GLIP LVIS path scores only the first image of each per-GPU batch
(maskrcnn_benchmark/engine/inference.py, inference: `output[0]`); this module scores every image it is
given, which is what the runner must pass.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from bench.metrics import MetricResult, detections, library_version, log, nan_if_negative, quiet_library
from bench.metrics.coco import gt_copy, per_class_ap
from bench.metrics.detections import as_dicts, detection_array
from bench.util.errors import UserError

VALUE_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR", "ARs", "ARm", "ARl")
FIXED_AP_PER_CLASS = 10_000  # Dave et al. / MDETR LvisEvaluatorFixedAP topk
MAX_DETS_PER_IMAGE = 300  # lvis-api Params.max_dets
FREQUENCIES = ("r", "c", "f")


def lvis_bbox(
    gt: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    backend: str = "hotcoco",
    max_dets: int = MAX_DETS_PER_IMAGE,
) -> MetricResult:
    """Standard LVIS box AP: the top `max_dets` detections per image (-1: no cap)."""
    gt = lvis_gt_copy(gt)
    return _evaluate(gt, detection_array(predictions, gt), backend, per_image_cap=int(max_dets))


def lvis_fixed_ap(
    gt: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    backend: str = "hotcoco",
    max_dets_per_class: int = FIXED_AP_PER_CLASS,
) -> MetricResult:
    """Fixed AP: the top `max_dets_per_class` detections per category over the split, no per-image cap."""
    gt = lvis_gt_copy(gt)
    arr = detections.top_per_class(detection_array(predictions, gt), int(max_dets_per_class))
    return _evaluate(gt, arr, backend, per_image_cap=-1)


def top_per_class(dets: Sequence[Mapping[str, Any]], cap: int) -> list[dict[str, Any]]:
    """Keep each category's `cap` highest-scored detections (ties: earlier first), in input order (dicts in,
    dicts out; the scorers use bench.metrics.detections.top_per_class on the array)."""
    rows = np.array([(d["image_id"], *d["bbox"], d["score"], d["category_id"]) for d in dets],
                    dtype=np.float64).reshape(-1, len(detections.COLUMNS))
    return as_dicts(detections.top_per_class(rows, cap))


def lvis_gt_copy(gt: Mapping[str, Any]) -> dict[str, Any]:
    """A mutable copy of an LVIS ground truth, checked for the federated fields the evaluation needs."""
    out = gt_copy(gt)
    for img in out["images"]:
        missing = [k for k in ("neg_category_ids", "not_exhaustive_category_ids") if k not in img]
        if missing:
            raise UserError(
                f"LVIS image {img.get('id')} lacks {missing}: LVIS metrics need the federated fields "
                "(an LVIS-format annotation file); use metric coco_bbox for COCO-format data"
            )
    for cat in out["categories"]:
        if cat.get("frequency") not in FREQUENCIES:
            raise UserError(
                f"LVIS category {cat.get('id')} ({cat.get('name')!r}) has frequency {cat.get('frequency')!r}; "
                "it must be one of 'r', 'c', 'f'"
            )
    return out


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """Provide `np.float` (removed in numpy 1.24) while lvis-api 0.5.3 runs; remove it afterwards.

    lvis-api's accumulate() casts with dtype=np.float (fixed on its GitHub master, not on PyPI).
    Not thread-safe: do not run lvis-api from two threads at once.
    """
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.float  # type: ignore[attr-defined]


def _evaluate(gt: dict[str, Any], dets: np.ndarray, backend: str, per_image_cap: int) -> MetricResult:
    """Run `backend` on the (N, 7) detections `dets` (bench.metrics.detections)."""
    if backend != "lvis" and any(a.get("ignore") for a in gt["annotations"]):
        # lvis-api leaves a ground truth flagged 'ignore' out of matching (lvis/eval.py, _prepare and
        # evaluate_img); hotcoco 1.3.0 (lvis_style, as faster-coco-eval 1.8.0 did) scores it as a normal object,
        # so their numbers differ (tests/bench/metrics/test_metrics_lvis.py). LVIS files carry no such flag;
        # a file that does is scored by the reference, and the result says so.
        log.info("LVIS ground truth has 'ignore' flags, which %s does not honour: scoring with lvis-api", backend)
        backend = "lvis"
    if backend == "lvis":
        values, precision, cat_ids = _run_lvis_api(gt, dets, per_image_cap)
        library = library_version("lvis")
    elif backend == "hotcoco":
        values, precision, cat_ids = _run_hotcoco(gt, dets, per_image_cap)
        library = library_version("hotcoco")
    else:
        raise UserError(f"LVIS backend must be 'hotcoco' or 'lvis', got {backend!r}")
    per_class = per_class_ap(precision, cat_ids, gt["categories"])
    return MetricResult(primary="AP", values=values, per_class=per_class, backend=backend, library=library)


def _run_lvis_api(
    gt: dict[str, Any], arr: np.ndarray, per_image_cap: int
) -> tuple[dict[str, float], np.ndarray, list[int]]:
    from lvis import LVIS, LVISEval, LVISResults

    dets = as_dicts(arr)

    class _LVISFromDict(LVIS):
        """lvis-api's LVIS reads a path; this one takes the dict we already hold."""

        def __init__(self, dataset: dict[str, Any]) -> None:
            self.logger = logging.getLogger("lvis.lvis")
            self.dataset = dataset
            self._create_index()

    with quiet_library("lvis"), numpy_float_alias():
        lvis_gt = _LVISFromDict(gt)
        if dets:
            lvis_dt = LVISResults(lvis_gt, dets, max_dets=per_image_cap)
        else:  # LVISResults indexes results[0]; an empty result set is built directly
            lvis_dt = LVISResults.__new__(LVISResults)
            _LVISFromDict.__init__(
                lvis_dt, {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            )
        evaluator = LVISEval(lvis_gt, lvis_dt, iou_type="bbox")
        evaluator.params.max_dets = per_image_cap  # a label in lvis-api; the cap itself is LVISResults'
        evaluator.run()
    r = evaluator.results
    cap = per_image_cap
    raw = [r["AP"], r["AP50"], r["AP75"], r["APs"], r["APm"], r["APl"], r["APr"], r["APc"], r["APf"],
           r[f"AR@{cap}"], r[f"ARs@{cap}"], r[f"ARm@{cap}"], r[f"ARl@{cap}"]]  # fmt: skip
    values = {name: nan_if_negative(v) for name, v in zip(VALUE_NAMES, raw)}
    return values, evaluator.eval["precision"], list(evaluator.params.cat_ids)


def _run_hotcoco(
    gt: dict[str, Any], dets: np.ndarray, per_image_cap: int
) -> tuple[dict[str, float], np.ndarray, list[int]]:
    """hotcoco's lvis_style COCOeval on its LVISResults (lvis-api's per-image cap, ties in input order)."""
    import hotcoco

    largest_pair = _largest_pair(dets)
    with quiet_library("hotcoco"), warnings.catch_warnings():
        # hotcoco warns when max_dets is not lvis-api's 300; here that is the point (Fixed AP: no cap)
        warnings.filterwarnings("ignore", message="hotcoco: max_dets differ", category=UserWarning)
        coco_gt = hotcoco.COCO(gt)
        coco_dt = hotcoco.LVISResults(coco_gt, dets, max_dets=per_image_cap)
        evaluator = hotcoco.COCOeval(coco_gt, coco_dt, "bbox", lvis_style=True)
        # params.max_dets (a list in hotcoco) also cuts each (image, category) pair's detections; after
        # LVISResults' per-image cap it must not bind, as in lvis-api: the cap, or the largest pair count
        evaluator.params.max_dets = [max(per_image_cap, largest_pair)]
        evaluator.run()
    r = evaluator.get_results()
    keys = evaluator.metric_keys()  # AP ... APf, then AR@m, ARs@m, ARm@m, ARl@m
    values = {name: nan_if_negative(r[k]) for name, k in zip(VALUE_NAMES, keys)}
    return values, np.asarray(evaluator.eval["precision"]), list(evaluator.params.cat_ids)


def _largest_pair(arr: np.ndarray) -> int:
    """The most detections any (image, category) pair has (at least 1)."""
    if not len(arr):
        return 1
    cats = arr[:, detections.CATEGORY].astype(np.int64)
    key = arr[:, detections.IMAGE].astype(np.int64) * (int(cats.max()) + 1) + (cats - int(cats.min()))  # one int per pair
    return int(np.unique(key, return_counts=True)[1].max())
