"""bench.metrics.detections: the column checks equal the entry-by-entry ones, message and all."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import detections
from bench.metrics.coco import clean_detections
from bench.metrics.lvis import top_per_class
from bench.testing.metrics import make_detection_fixture
from bench.util.errors import UserError


def _as_rows(dets: list[dict]) -> np.ndarray:
    return np.array([(d["image_id"], *d["bbox"], d["score"], d["category_id"]) for d in dets])


def test_array_equals_the_entry_by_entry_path():
    gt, dets = make_detection_fixture(60, 4, seed=1)
    arr = detections.detection_array(dets, gt)
    assert arr.shape == (len(dets), 7) and arr.dtype == np.float64
    assert np.array_equal(arr, _as_rows(clean_detections(dets, gt)))
    assert detections.as_dicts(arr) == clean_detections(dets, gt)
    # ids written as strings or floats: the entry-by-entry path parses them, as before
    odd = [{**d, "image_id": str(d["image_id"])} for d in dets[:5]] + [{**d, "category_id": 1.0} for d in dets[5:9]]
    assert np.array_equal(detections.detection_array(odd, gt), _as_rows(clean_detections(odd, gt)))


@pytest.mark.parametrize("change, message", [
    ({"score": float("nan")}, "non-finite score"),
    ({"bbox": [0, 0, -1, 2]}, "negative bbox width"),
    ({"image_id": 10**6}, "image_id 1000000"),
    ({"category_id": 99}, "category_id 99"),
    ({"score": True}, "score of type bool"),
    ({"bbox": [0, 0, 1]}, "is not {'image_id'"),
])
def test_first_bad_entry_is_named_as_before(change, message):
    gt, dets = make_detection_fixture(20, 3, seed=2)
    bad = list(dets)
    bad[7] = {**bad[7], **change}
    bad[9] = {**bad[9], "category_id": 77}  # a later problem is not the one reported
    with pytest.raises(UserError, match="prediction #7") as err:
        detections.detection_array(bad, gt)
    assert message in str(err.value)
    if change.get("score") is True or len(change.get("bbox", "four")) == 3:
        return  # an array cannot hold a bool or a 3-number box
    arr = _as_rows(bad)
    before = arr.copy()
    with pytest.raises(UserError, match=r"prediction #7"):
        detections.detection_array(arr, gt)
    assert np.array_equal(arr, before, equal_nan=True)  # the caller's array is not changed


def test_top_per_class_and_cap_per_image_keep_the_best_in_input_order():
    rows = np.array([
        # image, x, y, w, h, score, category
        [1, 0, 0, 1, 1, 0.5, 2],
        [1, 0, 0, 1, 1, 0.9, 1],
        [2, 0, 0, 1, 1, 0.9, 1],  # ties the one before: the earlier one wins
        [2, 0, 0, 1, 1, 0.1, 1],
        [3, 0, 0, 1, 1, 0.7, 2],
    ])
    assert detections.top_per_class(rows, 1)[:, 5].tolist() == [0.9, 0.7]
    assert detections.top_per_class(rows, 1)[:, 0].tolist() == [1, 3]
    assert detections.top_per_class(rows, 2)[:, 0].tolist() == [1, 1, 2, 3]
    assert detections.cap_per_image(rows, 1)[:, 5].tolist() == [0.9, 0.9, 0.7]
    assert detections.cap_per_image(rows, -1) is rows
    with pytest.raises(UserError, match="max_dets_per_class"):
        detections.top_per_class(rows, 0)
    # the dict version used by the tests gives the same selection
    dicts = detections.as_dicts(rows)
    assert top_per_class(dicts, 2) == detections.as_dicts(detections.top_per_class(rows, 2))
