"""Per-class AP with each class's frequency: which classes the AP comes from, and how common they are.

Values per class name: AP (COCO box AP x100 from the base metric, NaN without ground truth), the number of
ground-truth objects (crowd excluded) and of images holding one. Rare classes move a mean AP as much as
common ones; this shows which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.metrics import MetricResult, class_keys, evaluate

NAME = "per-class"
DEFINITION = "per-class COCO box AP (x100) with each class's ground-truth objects and images (crowd excluded)"


def compute(gt: Mapping[str, Any], predictions: Any, backend: str, base: str = "coco_bbox") -> MetricResult:
    """values: 'AP' (the mean) and, per class, '<name>/AP', '<name>/objects', '<name>/images'."""
    result = evaluate(base, gt, predictions, backend=backend)
    objects: Counter[int] = Counter()
    images: dict[int, set[int]] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):
            objects[int(a["category_id"])] += 1
            images.setdefault(int(a["category_id"]), set()).add(int(a["image_id"]))
    values = {"AP": result.values["AP"]}
    for cat_id, key in class_keys(gt["categories"]).items():
        values |= {f"{key}/AP": result.per_class[key], f"{key}/objects": float(objects[cat_id]),
                   f"{key}/images": float(len(images.get(cat_id, ())))}
    return MetricResult(primary="AP", values=values, per_class=dict(result.per_class), backend=result.backend,
                        library=result.library)
