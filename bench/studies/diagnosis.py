"""Why a detector's AP is low: finding objects (localisation) or naming them (word-region alignment)?

Two numbers from a detection run's predictions, both computed against the same COCO ground truth:

- class-agnostic AP: every ground-truth box and every prediction relabelled to one class, after keeping
  only the best-scoring prediction per identical box (a grounding model scores one anchor's box against
  every phrase, so the same box comes once per phrase). High = the model finds the objects.
- label accuracy: over the ground-truth objects that some prediction covers at IoU >= 0.5, the share whose
  best-scoring covering prediction carries the right label; chance = 1 / number of classes. At chance =
  the model does not tell the classes apart, whatever it finds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from glip.ops.boxes import box_iou, xywh_to_xyxy


def _xyxy(boxes_xywh: Sequence[Sequence[float]]) -> torch.Tensor:
    """COCO [x, y, w, h] -> continuous xyxy [N, 4] (the IoU COCOeval uses: no +1)."""
    return xywh_to_xyxy(torch.tensor(boxes_xywh, dtype=torch.float64).reshape(-1, 4), legacy=False)


def dedupe_boxes(predictions: Sequence[Mapping[str, Any]], decimals: int = 2) -> list[dict[str, Any]]:
    """The best-scoring prediction per (image, box), labels dropped to category 1."""
    best: dict[tuple, dict[str, Any]] = {}
    for p in predictions:
        key = (p["image_id"], tuple(round(float(v), decimals) for v in p["bbox"]))
        if key not in best or best[key]["score"] < p["score"]:
            best[key] = {**p, "category_id": 1}
    return list(best.values())


def class_agnostic_ap(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]]) -> float:
    """COCO AP@[.5:.95] x 100 with every class merged into one (see the module docstring)."""
    from bench.metrics import evaluate

    merged = {**gt, "categories": [{"id": 1, "name": "object"}],
              "annotations": [{**a, "category_id": 1} for a in gt["annotations"]]}
    return float(evaluate("coco_bbox", merged, dedupe_boxes(predictions)).values["AP"])


def label_accuracy(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], iou: float = 0.5
                   ) -> tuple[float, int]:
    """(share of covered objects whose best covering prediction is correctly labelled, objects covered)."""
    by_image: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for p in predictions:
        by_image[p["image_id"]].append(p)
    gt_by_image: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            gt_by_image[a["image_id"]].append(a)
    correct = covered = 0
    for image_id, objects in gt_by_image.items():
        preds = by_image.get(image_id, [])
        if not preds:
            continue
        ious = box_iou(_xyxy([a["bbox"] for a in objects]), _xyxy([p["bbox"] for p in preds]), legacy=False)  # [G, P]
        scores = torch.tensor([float(p["score"]) for p in preds], dtype=torch.float64)
        for g, obj in enumerate(objects):
            cover = (ious[g] >= iou).nonzero().flatten()
            if cover.numel() == 0:
                continue
            top = int(cover[scores[cover].argmax()])
            covered += 1
            correct += int(preds[top]["category_id"] == obj["category_id"])
    return (correct / covered if covered else float("nan")), covered


def diagnose(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """{"class_agnostic_ap", "label_accuracy", "label_chance", "objects_covered"} of one detection run."""
    accuracy, covered = label_accuracy(gt, predictions)
    return {"class_agnostic_ap": class_agnostic_ap(gt, predictions), "label_accuracy": accuracy,
            "label_chance": 1.0 / max(len(gt["categories"]), 1), "objects_covered": float(covered)}
