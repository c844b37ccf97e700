"""aggregate (ODinW-style mean/median with completeness) and the evaluate() dispatcher."""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace

import pytest

from bench.metrics import BACKENDS, DEFAULT_BACKEND, METRICS, MetricResult, aggregate, evaluate
from bench.util.errors import UserError


def test_mean_median_n_of_a_complete_group():
    per_task = {"a": 10.0, "b": 40.0, "c": 20.0, "d": 50.0}
    out = aggregate(per_task)
    assert out["mean"] == pytest.approx(30.0) and out["median"] == pytest.approx(30.0) and out["n"] == 4
    assert out["complete"] is True and out["missing"] == [] and out["extra"] == []
    assert aggregate(per_task, expected=["d", "c", "b", "a"])["complete"] is True


def test_incomplete_group_is_not_averaged_silently():
    per_task = {"a": 10.0, "b": 40.0, "z": 99.0}
    out = aggregate(per_task, expected=["a", "b", "c"])
    assert out["complete"] is False and out["missing"] == ["c"] and out["extra"] == ["z"]
    assert math.isnan(out["mean"]) and math.isnan(out["median"]) and out["n"] == 0
    partial = aggregate(per_task, expected=["a", "b", "c"], partial=True)
    assert partial["mean"] == pytest.approx(25.0) and partial["n"] == 2 and partial["complete"] is False


def test_nan_counts_as_missing():
    out = aggregate({"a": 10.0, "b": math.nan, "c": 30.0})
    assert out["complete"] is False and out["missing"] == ["b"] and math.isnan(out["mean"])
    partial = aggregate({"a": 10.0, "b": math.nan, "c": 30.0}, partial=True)
    assert partial["mean"] == pytest.approx(20.0) and partial["median"] == pytest.approx(20.0)


def test_empty_group():
    out = aggregate({}, expected=[])
    assert out["complete"] is False and out["n"] == 0 and math.isnan(out["mean"])


def test_matches_statistics_on_thirteen_tasks():
    values = {f"t{i}": float(v) for i, v in enumerate([3, 41, 7.5, 60, 12, 0, 33, 33, 80.25, 5, 19, 27, 44])}
    out = aggregate(values, expected=list(values))
    assert out["mean"] == pytest.approx(statistics.fmean(values.values()))
    assert out["median"] == statistics.median(values.values()) and out["n"] == 13


def test_dispatch_names_and_data_set_objects():
    assert set(METRICS) == {"coco_bbox", "lvis_fixed_ap", "lvis_bbox", "flickr_recall", "ov_coco_bbox", "ov_lvis_fixed_ap",
                            "rec_accuracy", "grec_accuracy"}
    assert all(b[0] == DEFAULT_BACKEND == "hotcoco" for b in BACKENDS.values())  # the default exists for every metric
    with pytest.raises(UserError, match="Did you mean 'flickr_recall'"):
        evaluate("flickr_recal", [], [])
    with pytest.raises(UserError, match="numpy"):
        evaluate("flickr_recall", [], [], backend="lvis")
    gt = {
        "images": [{"id": 1, "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25}],
    }
    det = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]
    result = evaluate("coco_bbox", SimpleNamespace(coco=gt), det)  # e.g. DetectionDataset.coco
    assert isinstance(result, MetricResult) and result.values["AP"] == pytest.approx(100.0)
    assert result.to_dict()["backend"] == "hotcoco"
    entities = [{"image_id": 1, "phrases": [{"phrase_id": "x", "boxes": [[0, 0, 5, 5]], "types": ["other"]}]}]
    grounding = evaluate(
        "flickr_recall", SimpleNamespace(entities=entities), [{"image_id": 1, "boxes": [[[0, 0, 5, 5]]]}]
    )
    assert grounding.values["R@1"] == 100.0
    with pytest.raises(UserError, match="COCO-format"):
        evaluate("coco_bbox", [1, 2], det)
