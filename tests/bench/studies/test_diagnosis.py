"""bench.studies.diagnosis: class-agnostic AP and label accuracy separate finding objects from naming them."""

import math

import pytest

from bench.studies.diagnosis import class_agnostic_ap, dedupe_boxes, diagnose, label_accuracy


def _gt(n_images: int = 4) -> dict:
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in range(1, n_images + 1)]
    anns, k = [], 0
    for img in images:
        for j, cat in enumerate((1, 2)):
            k += 1
            anns.append({"id": k, "image_id": img["id"], "category_id": cat, "bbox": [10 + 50 * j, 10, 30, 30],
                         "area": 900, "iscrowd": 0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def _preds(gt: dict, swap: bool) -> list[dict]:
    """Each object predicted once per class at its exact box; the right label scores higher unless `swap`."""
    out = []
    for a in gt["annotations"]:
        for cat in (1, 2):
            right = cat == a["category_id"]
            out.append({"image_id": a["image_id"], "category_id": cat, "bbox": list(a["bbox"]),
                        "score": 0.9 if right != swap else 0.4})
    return out


@pytest.mark.parametrize("swap", [False, True])
def test_perfect_boxes_give_full_class_agnostic_ap_whatever_the_labels(swap):
    gt = _gt()
    assert class_agnostic_ap(gt, _preds(gt, swap)) == pytest.approx(100.0)


def test_label_accuracy_is_one_for_right_labels_and_zero_for_swapped():
    gt = _gt()
    assert label_accuracy(gt, _preds(gt, swap=False)) == (1.0, 8)
    assert label_accuracy(gt, _preds(gt, swap=True)) == (0.0, 8)


def test_uncovered_objects_are_left_out_of_label_accuracy():
    gt = _gt()
    preds = [p for p in _preds(gt, swap=False) if p["bbox"][0] == 10]  # only the category-1 objects
    preds.append({"image_id": 1, "category_id": 1, "bbox": [60, 10, 30, 30], "score": 0.5})  # wrong label, covers one
    accuracy, covered = label_accuracy(gt, preds)
    assert covered == 5 and accuracy == pytest.approx(4 / 5)


def test_dedupe_keeps_the_best_score_per_box():
    preds = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.2},
             {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.7},
             {"image_id": 2, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.1}]
    kept = sorted(dedupe_boxes(preds), key=lambda p: p["image_id"])
    assert [(p["image_id"], p["score"], p["category_id"]) for p in kept] == [(1, 0.7, 1), (2, 0.1, 1)]


def test_diagnose_reports_chance_and_nan_without_predictions():
    gt = _gt()
    d = diagnose(gt, _preds(gt, swap=True))
    assert d["label_chance"] == 0.5 and d["label_accuracy"] == 0.0 and d["class_agnostic_ap"] == pytest.approx(100.0)
    assert math.isnan(label_accuracy(gt, [])[0])
