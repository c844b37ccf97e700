"""Extra metrics: NMS-AP (OVDEval), P/R/F1 (brute force), TIDE (the paper's definition by hand), per-class AP."""

from __future__ import annotations

import copy
import io
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bench.metrics import evaluate, nms_ap, per_class, tide
from bench.metrics import f1 as f1_metric
from bench.metrics.detections import as_dicts, detection_array
from bench.metrics.extras import EXTRA_METRICS, compute_extra, parse_list
from bench.testing.metrics import make_detection_fixture
from bench.util.errors import UserError


def _ann(i: int, image: int, cat: int, box: list[float], crowd: int = 0) -> dict:
    return {"id": i, "image_id": image, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd}


def _det(image: int, cat: int, box: list[float], score: float) -> dict:
    return {"image_id": image, "category_id": cat, "bbox": box, "score": score}


def _gt(annotations: list[dict], n_images: int = 3, n_cats: int = 2) -> dict:
    return {"images": [{"id": i, "width": 200, "height": 200} for i in range(1, n_images + 1)],
            "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)], "annotations": annotations}


A, B, C = [10, 10, 100, 100], [50, 50, 80, 80], [20, 30, 60, 60]


def test_nms_ap_is_lower_when_one_box_carries_several_labels():
    gt = _gt([_ann(1, 1, 1, A), _ann(2, 2, 2, B), _ann(3, 3, 1, C)])
    dets = [_det(1, 2, A, 0.9), _det(1, 1, A, 0.8),  # both labels on image 1's box, the wrong one first
            _det(2, 1, B, 0.9), _det(2, 2, B, 0.8),  # the same on image 2
            _det(3, 1, C, 0.95)]  # right, alone
    plain = evaluate("coco_bbox", gt, dets)
    nms = nms_ap.compute(gt, dets, backend="hotcoco")
    # OVDEval keeps each box's top-scored prediction: the two lower copies go (here, the right labels)
    kept = [dets[0], dets[2], dets[4]]
    assert nms.values == evaluate("coco_bbox", gt, kept).values
    assert nms.values["AP"] < plain.values["AP"]
    assert plain.values["AP50"] == pytest.approx((100 * (51 + 50 * 2 / 3) / 101 + 50) / 2)
    assert nms.values["AP50"] == pytest.approx(100 * 51 / 101 / 2)


def test_nms_ap_equals_ap_when_every_box_has_one_label():
    gt = _gt([_ann(1, 1, 1, A), _ann(2, 2, 2, B), _ann(3, 3, 1, C)])
    dets = [_det(1, 1, A, 0.9), _det(2, 1, B, 0.8), _det(3, 1, [25, 35, 60, 60], 0.7),
            _det(3, 2, [150, 150, 20, 20], 0.6)]  # one wrong label, and one away from every object
    assert nms_ap.compute(gt, dets, backend="hotcoco").values == evaluate("coco_bbox", gt, dets).values


def _ovdeval_suppression(gt: dict, dets: list[dict]) -> list[dict]:
    """OVDEval's procedure written as loops (their eval.py's steps), the reference for `suppress`."""
    kept_all = []
    for image in {d["image_id"] for d in dets}:
        preds = [d for d in dets if d["image_id"] == image]
        keep, remove = set(), set()
        for a in (a for a in gt["annotations"] if a["image_id"] == image):
            ious = nms_ap.iou_xywh(np.array([a["bbox"]], float), np.array([p["bbox"] for p in preds], float))[0]
            cands = [i for i in range(len(preds)) if ious[i] > 0.5]
            ranked = sorted(cands, key=lambda i: (preds[i]["score"], i), reverse=True)  # ties: the later first
            if ranked:
                keep.add(ranked[0])
                remove.update(ranked[1:])
        kept_all += [(dets.index(p), p) for i, p in enumerate(preds) if i not in (remove - keep)]
    return [p for _, p in sorted(kept_all, key=lambda t: t[0])]


def test_nms_suppression_equals_ovdeval_loops():
    gt, dets = make_detection_fixture(40, 4, seed=8, score_decimals=2)  # ties included
    arr = detection_array(dets, gt)
    assert as_dicts(nms_ap.suppress(arr, gt["annotations"])) == as_dicts(detection_array(_ovdeval_suppression(gt, dets), gt))
    assert len(nms_ap.suppress(arr, gt["annotations"])) < len(dets)


def _brute_prf(gt: dict, dets: list[dict], iou: float, threshold: float) -> tuple[int, int, int]:
    """(TP, FP, objects) by the definition, one detection at a time."""
    kept = sorted((d for d in dets if d["score"] >= threshold), key=lambda d: -d["score"])
    taken: set[int] = set()
    tp = fp = 0
    for d in kept:
        best, best_iou = None, iou
        crowd_hit = False
        for a in gt["annotations"]:
            if a["image_id"] != d["image_id"] or a["category_id"] != d["category_id"]:
                continue
            v = nms_ap.iou_xywh(np.array([d["bbox"]], float), np.array([a["bbox"]], float))[0, 0]
            if a.get("iscrowd"):
                crowd_hit |= v >= iou
            elif a["id"] not in taken and v >= best_iou:
                best, best_iou = a["id"], v
        if best is not None:
            taken.add(best)
            tp += 1
        elif not crowd_hit:
            fp += 1
    return tp, fp, sum(1 for a in gt["annotations"] if not a.get("iscrowd"))


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.8])
def test_f1_equals_brute_force(threshold):
    gt, dets = make_detection_fixture(30, 3, seed=9, crowd_fraction=0.1)  # distinct scores
    r = f1_metric.compute(gt, dets, score_threshold=threshold)
    for key, iou in f1_metric.IOUS.items():
        tp, fp, n = _brute_prf(gt, dets, iou, threshold)
        p, rec = 100 * tp / (tp + fp), 100 * tp / n
        assert r.values[f"P{key}"] == pytest.approx(p) and r.values[f"R{key}"] == pytest.approx(rec)
        assert r.values[f"F1_{key}"] == pytest.approx(2 * p * rec / (p + rec) if p + rec else 0.0)
        # the best F1 is the largest over every detection's score as the threshold
        best = max((2 * t / (t + f + n), s) for s in {d["score"] for d in dets}
                   for t, f, _ in [_brute_prf(gt, dets, iou, s)])
        assert r.values[f"F1max{key}"] == pytest.approx(100 * best[0]) and r.values[f"score_F1max{key}"] == best[1]


def test_tide_equals_the_paper_definition_by_hand():
    """One error of each kind; each dAP is the AP50 (pycocotools) gained by that fix, applied by hand."""
    gt = _gt([_ann(1, 1, 1, [10, 10, 50, 50]), _ann(2, 1, 1, [120, 120, 50, 50]), _ann(3, 2, 2, [10, 10, 50, 50]),
              _ann(4, 2, 2, [120, 120, 50, 50]), _ann(5, 2, 2, [60, 100, 30, 30]), _ann(6, 2, 1, [150, 10, 40, 40])],
             n_images=2)
    dets = [_det(1, 1, [10, 10, 50, 50], 0.9),  # TP
            _det(1, 1, [10, 10, 50, 50], 0.85),  # Dupe
            _det(1, 2, [120, 120, 50, 50], 0.8),  # Cls: a class-1 object called class 2
            _det(2, 2, [10, 10, 50, 20], 0.7),  # Loc: IoU 0.4
            _det(2, 1, [100, 10, 20, 20], 0.6),  # Bkg
            _det(2, 1, [120, 140, 50, 50], 0.5),  # Both: wrong class, IoU 0.43
            _det(2, 1, [150, 10, 40, 40], 0.3),  # TP
            _det(2, 2, [120, 120, 50, 50], 0.2)]  # TP; object 5 is missed
    base = _ap50(gt, dets)
    fixed = {"Cls": _replace(dets, 2, category_id=1), "Loc": _replace(dets, 3, bbox=[10, 10, 50, 50]),
             "Both": _drop(dets, 5), "Dupe": _drop(dets, 1), "Bkg": _drop(dets, 4)}
    expected = {k: 100 * (_ap50(gt, v) - base) for k, v in fixed.items()}
    expected["Miss"] = 100 * (_ap50({**gt, "annotations": gt["annotations"][:4] + gt["annotations"][5:]}, dets) - base)
    r = tide.compute(gt, dets)
    assert r.values["AP50"] == pytest.approx(100 * base, abs=1e-10)
    for kind, value in expected.items():
        assert r.values[f"dAP_{kind}"] == pytest.approx(value, abs=1e-10), kind
        assert r.values[f"n_{kind}"] == 1.0
    assert all(v > 0 for v in expected.values())  # each fix matters in this case


def _ap50(gt: dict, dets: list[dict]) -> float:
    with redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def _replace(dets: list[dict], i: int, **change) -> list[dict]:
    return [{**d, **change} if k == i else d for k, d in enumerate(dets)]


def _drop(dets: list[dict], i: int) -> list[dict]:
    return [d for k, d in enumerate(dets) if k != i]


def test_per_class_counts_objects_and_images():
    gt = _gt([_ann(1, 1, 1, A), _ann(2, 1, 1, C), _ann(3, 2, 1, B), _ann(4, 3, 2, B, crowd=1)])
    r = per_class.compute(gt, [_det(1, 1, A, 0.9)], backend="hotcoco")
    assert r.values["c1/objects"] == 3 and r.values["c1/images"] == 2
    assert r.values["c2/objects"] == 0 and math.isnan(r.values["c2/AP"])
    assert r.values["AP"] == evaluate("coco_bbox", gt, [_det(1, 1, A, 0.9)]).values["AP"]


def test_registry_names_and_records():
    assert parse_list("nms-ap, f1,nms-ap") == ["nms-ap", "f1"]
    with pytest.raises(UserError, match="nms-ap"):
        parse_list("nmsap")
    gt = _gt([_ann(1, 1, 1, A)])
    for name in EXTRA_METRICS:
        out = compute_extra(name, gt, [_det(1, 1, A, 0.9)], backend="hotcoco")
        assert out["definition"] and out["backend"] and out["values"]
