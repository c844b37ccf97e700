"""Open-vocabulary detection metrics: the base metric on all evaluated classes, plus AP on the novel and the
base classes separately, with the protocol's headline as primary.

- ov_coco_bbox (OV-COCO, 48 base / 17 novel; OVR-CNN, Detic, mmdet's OVCocoMetric): COCO box AP three
  times, on all classes, on the novel and on the base classes (ground truth and detections of that subset:
  COCOeval scores each class on its own, with at most 100 detections per image and class, so a subset's
  per-class numbers are those of the full run). Headline: AP50_novel.
- ov_lvis_fixed_ap (OV-LVIS, base = frequent + common, novel = rare; Detic, MM-Grounding-DINO 866/337):
  LVIS Fixed AP once (its per-class cap spans the whole split, so it is not split), AP_novel / AP_base the
  mean per-class AP over each subset's classes that have ground truth. Headline: APr.

The split comes with the ground truth (bench.data.open_vocab puts {"base": ids, "novel": ids} in it). A
ground truth without novel classes (a base-only view, as training's early stopping scores) has the base
number as its headline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.metrics import MetricResult, class_keys
from bench.util.errors import UserError

OPEN_VOCAB_KEY = "open_vocab"  # bench.data.open_vocab.OPEN_VOCAB_KEY (metrics do not import the data package)


def _split(gt: Mapping[str, Any], metric: str) -> tuple[dict[str, Any], list[int], list[int]]:
    if OPEN_VOCAB_KEY not in gt:
        raise UserError(f"metric {metric!r} needs the ground truth of an open-vocabulary task (its base/novel "
                        f"split under {OPEN_VOCAB_KEY!r}); load it with Task.load of a task with an open_vocab block")
    split = gt[OPEN_VOCAB_KEY]
    plain = {k: v for k, v in gt.items() if k != OPEN_VOCAB_KEY}
    return plain, [int(i) for i in split["base"]], [int(i) for i in split["novel"]]


def only_classes(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], ids: set[int]
                 ) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """Ground truth and detections of the categories `ids` (images kept: a false positive stays one)."""
    sub = dict(gt)
    sub["categories"] = [c for c in gt["categories"] if int(c["id"]) in ids]
    sub["annotations"] = [a for a in gt["annotations"] if int(a["category_id"]) in ids]
    return sub, [p for p in predictions if int(p["category_id"]) in ids]


def ov_coco_bbox(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], backend: str) -> MetricResult:
    from bench.metrics.coco import coco_bbox

    plain, base, novel = _split(gt, "ov_coco_bbox")
    full = coco_bbox(plain, predictions, backend=backend)
    values = dict(full.values)
    for name, ids in (("novel", novel), ("base", base)):
        part = coco_bbox(*only_classes(plain, predictions, set(ids)), backend=backend).values if ids else {}
        values[f"AP_{name}"] = part.get("AP", math.nan)
        values[f"AP50_{name}"] = part.get("AP50", math.nan)
    primary = "AP50_novel" if novel else "AP50_base"
    return MetricResult(primary=primary, values=values, per_class=full.per_class, backend=full.backend,
                        library=full.library)


def ov_lvis_fixed_ap(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], backend: str,
                     **options: Any) -> MetricResult:
    from bench.metrics.lvis import lvis_fixed_ap

    plain, base, novel = _split(gt, "ov_lvis_fixed_ap")
    full = lvis_fixed_ap(plain, predictions, backend=backend, **options)
    keys = class_keys(plain["categories"])
    values = dict(full.values)
    for name, ids in (("novel", novel), ("base", base)):
        aps = [full.per_class.get(keys[i], math.nan) for i in ids]
        aps = [a for a in aps if not math.isnan(a)]
        values[f"AP_{name}"] = sum(aps) / len(aps) if aps else math.nan
    primary = "APr" if novel else "AP_base"
    return MetricResult(primary=primary, values=values, per_class=full.per_class, backend=full.backend,
                        library=full.library)
