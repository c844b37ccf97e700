"""coco_bbox: equal to pycocotools' own numbers; hotcoco equal to pycocotools."""

from __future__ import annotations

import copy
import io
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bench.metrics import evaluate
from bench.metrics.coco import STAT_NAMES
from bench.testing.metrics import make_detection_fixture, with_edge_cases
from bench.util.errors import UserError


def pycocotools_stats(gt: dict, dets: list[dict], cat_ids: list[int] | None = None) -> np.ndarray:
    """The reference, called directly: pycocotools COCOeval on deep copies of the inputs."""
    with redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.fixture(scope="module")
def fixture_1000() -> tuple[dict, list[dict]]:
    gt, dets = make_detection_fixture(n_images=1000, n_categories=8, seed=3)
    assert len(gt["images"]) == 1000 and len(dets) > 5000
    return gt, dets


def as_percent(stats: np.ndarray) -> list[float]:
    return [math.nan if s < 0 else 100.0 * s for s in stats]


def test_pycocotools_backend_equals_pycocotools(fixture_1000):
    gt, dets = fixture_1000
    result = evaluate("coco_bbox", gt, dets, backend="pycocotools")
    assert list(result.values) == list(STAT_NAMES)
    assert [result.values[k] for k in STAT_NAMES] == as_percent(pycocotools_stats(gt, dets))
    assert (
        result.primary == "AP"
        and result.backend == "pycocotools"
        and result.library.startswith("pycocotools")
    )
    assert 20 < result.values["AP"] < 70  # a realistic detector, not a degenerate fixture


@pytest.mark.parametrize(
    "crowd_fraction, score_decimals",
    [(0.0, None), (0.05, None), (0.0, 2)],
    ids=["plain", "crowd", "tied-scores"],
)
def test_hotcoco_equals_pycocotools(crowd_fraction, score_decimals):
    backend, library = "hotcoco", "hotcoco"
    gt, dets = make_detection_fixture(
        1000, 8, seed=11, crowd_fraction=crowd_fraction, score_decimals=score_decimals
    )
    ref = evaluate("coco_bbox", gt, dets, backend="pycocotools")
    fast = evaluate("coco_bbox", gt, dets, backend=backend)
    # observed: bit-identical (hotcoco 1.3.0 vs pycocotools 2.0.11), ties and crowd included
    assert fast.values == ref.values
    assert fast.per_class == ref.per_class
    assert fast.library.startswith(library)


def test_hotcoco_equals_pycocotools_on_edge_cases():
    """Non-contiguous ids, empty images, images with no ground truth, 'ignore' flags, crowd, tied scores and
    more than maxDets (100) detections in one image: all as pycocotools scores them."""
    gt, dets = with_edge_cases(*make_detection_fixture(300, 6, seed=4, crowd_fraction=0.05, score_decimals=3))
    ref = evaluate("coco_bbox", gt, dets, backend="pycocotools")
    fast = evaluate("coco_bbox", gt, dets, backend="hotcoco")
    assert fast.values == ref.values and fast.per_class == ref.per_class
    assert 10 < ref.values["AP"] < 80


def test_per_class_ap_equals_single_category_evaluation(fixture_1000):
    gt, dets = fixture_1000
    result = evaluate("coco_bbox", gt, dets, backend="hotcoco")
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for cat_id in (1, 4, 8):  # pycocotools restricted to one category gives that class's AP as stats[0]
        assert result.per_class[names[cat_id]] == pytest.approx(
            100 * pycocotools_stats(gt, dets, [cat_id])[0], abs=1e-12
        )
    assert np.nanmean(list(result.per_class.values())) == pytest.approx(result.values["AP"], abs=1e-9)


def _tiny_gt() -> dict:
    return {
        "images": [{"id": 1, "width": 200, "height": 200}, {"id": 2, "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "unicorn"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 10, 100, 100],
                "area": 10000,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 2,
                "bbox": [50, 50, 120, 120],
                "area": 14400,
                "iscrowd": 0,
            },
        ],
    }


@pytest.mark.parametrize("backend", ["pycocotools", "hotcoco"])
def test_hand_case(backend):
    gt = _tiny_gt()
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100], "score": 0.9},  # exact: IoU 1
        {"image_id": 2, "category_id": 2, "bbox": [50, 50, 120, 80], "score": 0.8},  # IoU 80/120 = 0.667
    ]
    r = evaluate("coco_bbox", gt, dets, backend=backend)
    assert r.per_class["cat"] == pytest.approx(100.0)
    # dog: a hit at IoU .50-.65 (4 of 10 thresholds), a miss above -> AP 40
    assert r.per_class["dog"] == pytest.approx(40.0)
    assert math.isnan(r.per_class["unicorn"])  # no ground truth
    assert r.values["AP"] == pytest.approx(70.0)
    assert r.values["AP50"] == pytest.approx(100.0) and r.values["AP75"] == pytest.approx(50.0)
    assert math.isnan(r.values["APs"]) and math.isnan(r.values["APm"])  # both objects are large
    assert r.values["APl"] == pytest.approx(70.0)


@pytest.mark.parametrize("backend", ["pycocotools", "hotcoco"])
def test_empty_predictions_give_zeros_and_nan(backend):
    r = evaluate("coco_bbox", _tiny_gt(), [], backend=backend)
    assert r.values["AP"] == 0.0 and r.values["AR100"] == 0.0 and r.values["APl"] == 0.0
    assert math.isnan(r.values["APs"])
    assert r.per_class["cat"] == 0.0 and math.isnan(r.per_class["unicorn"])


def test_inputs_not_mutated_and_no_stdout(capsys):
    gt, dets = make_detection_fixture(50, 3, seed=5)
    gt_before, dets_before = copy.deepcopy(gt), copy.deepcopy(dets)
    for backend in ("pycocotools", "hotcoco"):
        evaluate("coco_bbox", gt, dets, backend=backend)
    assert gt == gt_before and dets == dets_before
    assert capsys.readouterr().out == ""


def test_bad_input_names_the_problem():
    gt = _tiny_gt()
    with pytest.raises(UserError, match="unknown metric 'coco_box'.*coco_bbox"):
        evaluate("coco_box", gt, [])
    with pytest.raises(UserError, match="pycocotools"):
        evaluate("coco_bbox", gt, [], backend="pycoco")
    with pytest.raises(UserError, match="image_id 7"):
        evaluate("coco_bbox", gt, [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])
    with pytest.raises(UserError, match="category_id 0"):
        evaluate("coco_bbox", gt, [{"image_id": 1, "category_id": 0, "bbox": [0, 0, 1, 1], "score": 0.5}])
    with pytest.raises(UserError, match="prediction #0"):
        evaluate("coco_bbox", gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}])
    with pytest.raises(UserError, match="unknown option"):
        evaluate("coco_bbox", gt, [], merged=True)
    with pytest.raises(UserError, match="annotations"):
        evaluate("coco_bbox", {"images": [], "categories": []}, [])
