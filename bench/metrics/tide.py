"""TIDE error breakdown (Bolya et al., ECCV 2020): how much AP50 each kind of error costs.

Every false positive at IoU 0.5 gets one type, by its best overlap with a ground-truth box (foreground
threshold 0.5, background 0.1): Cls (right place, wrong class), Loc (right class, 0.1 <= IoU < 0.5), Both
(wrong class and poorly placed), Dupe (right box already taken by a higher score), Bkg (IoU < 0.1 with
everything); a ground truth no error accounts for is Miss. Each type's dAP is the AP50 gained when only
that type is fixed (the detection corrected or removed; a missed object removed from the ground truth);
FP and FN fix all false positives / all misses at once. Values: dAP_<type> x100, n_<type> (counts),
AP50 (the base).

Computed by hotcoco's tide_errors (Rust) on COCO's matching (pycocotools AP50, maxDets 100). We chose it over
tidecv (the authors' package): tidecv needs seaborn and appdirs, which the project does not install, and
computes its own AP (65.80 AP50 where pycocotools gives 65.63 on bench.testing's fixture), so its dAPs do not
add up against the AP the records report; hotcoco's equal the paper's definition applied by hand on the
case in tests/bench/metrics/test_extra_metrics.py (fixed detections scored with pycocotools).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.metrics import MetricResult, library_version, quiet_library
from bench.metrics.coco import gt_copy
from bench.metrics.detections import detection_array

NAME = "tide"
DEFINITION = ("TIDE (Bolya et al., ECCV 2020): AP50 gained by fixing each error type (Cls, Loc, Both, Dupe, "
              "Bkg, Miss; FP, FN), foreground IoU 0.5, background 0.1; hotcoco's tide_errors on COCO matching")
TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")


def compute(gt: Mapping[str, Any], predictions: Any, backend: str = "hotcoco") -> MetricResult:
    """dAP per error type (0-100), their counts, and the base AP50; `backend` is recorded (hotcoco computes)."""
    import hotcoco

    gt = gt_copy(gt)
    arr = detection_array(predictions, gt)
    with quiet_library("hotcoco"):
        coco_gt = hotcoco.COCO(gt)
        evaluator = hotcoco.COCOeval(coco_gt, coco_gt.load_res(arr), "bbox")
        evaluator.evaluate()
        errors = evaluator.tide_errors(pos_thr=0.5, bg_thr=0.1)
    values = {"AP50": 100.0 * float(errors["ap_base"])}
    values |= {f"dAP_{t}": 100.0 * float(errors["delta_ap"][t]) for t in (*TYPES, "FP", "FN")}
    values |= {f"n_{t}": float(errors["counts"][t]) for t in TYPES}
    return MetricResult(primary="AP50", values=values, backend="hotcoco", library=library_version("hotcoco"))
