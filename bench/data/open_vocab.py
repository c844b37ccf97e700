"""Open-vocabulary views of a detection data set: the base classes (what training may see) or base + novel
(what evaluation prompts and scores).

A task's `open_vocab` block names its base and novel classes, either as annotation-file names or as LVIS
frequency groups ({frequency: [r]}); classes in neither are dropped (OV-COCO keeps 48 + 17 of COCO's 80).
The view's `coco` dict carries {"base": ids, "novel": ids} under OPEN_VOCAB_KEY for the open-vocabulary
metrics (bench.metrics.open_vocab), so a rescore from a saved predictions file sees the same split.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from bench.data.types import DetectionDataset
from bench.util.errors import UserError

OPEN_VOCAB_KEY = "open_vocab"
VOCABULARIES = ("all", "base")


def class_ids(categories: Sequence[Mapping[str, Any]], rule: Any, what: str, task: str) -> list[int]:
    """Category ids a rule selects: a list of annotation-file names, or {frequency: [letters]} (LVIS)."""
    if isinstance(rule, Mapping):
        wanted = set(rule["frequency"])
        return [int(c["id"]) for c in categories if c.get("frequency") in wanted]
    by_name = {str(c["name"]): int(c["id"]) for c in categories}
    missing = [n for n in rule if n not in by_name]
    if missing:
        raise UserError(f"task {task}: open_vocab.{what} names {missing} that the annotation file does not have")
    return [by_name[n] for n in rule]


def split_ids(dataset: DetectionDataset, spec: Mapping[str, Any], task: str) -> tuple[list[int], list[int]]:
    """(base ids, novel ids) of a loaded data set; overlapping or empty splits are errors."""
    base = class_ids(dataset.categories, spec["base"], "base", task)
    novel = class_ids(dataset.categories, spec["novel"], "novel", task)
    overlap = sorted(set(base) & set(novel))
    if overlap or not base or not novel:
        raise UserError(f"task {task}: open_vocab needs non-empty, disjoint base and novel classes "
                        f"(got {len(base)} base, {len(novel)} novel, overlapping ids {overlap[:10]})")
    return base, novel


def open_vocab_view(dataset: DetectionDataset, spec: Mapping[str, Any], vocabulary: str, task: str
                    ) -> DetectionDataset:
    """`dataset` restricted to base + novel ("all") or to base ("base") categories and their boxes.

    spec["drop_empty_images"]: for "all", drop images left without a box (OVR-CNN's
    instances_val2017_all: val2017 images with a box of the 65 classes).
    """
    if vocabulary not in VOCABULARIES:
        raise UserError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
    base, novel = split_ids(dataset, spec, task)
    keep = set(base) | (set(novel) if vocabulary == "all" else set())
    view = restrict_categories(dataset, keep, drop_empty_images=vocabulary == "all" and spec.get("drop_empty_images", False))
    view.coco[OPEN_VOCAB_KEY] = {"base": base, "novel": novel if vocabulary == "all" else []}
    return view


def restrict_categories(dataset: DetectionDataset, keep: set[int], drop_empty_images: bool = False) -> DetectionDataset:
    """A copy with only the `keep` categories, their annotations (LVIS per-image id lists filtered too)."""
    coco = copy.deepcopy({k: v for k, v in dataset.coco.items() if k not in ("annotations", "images")})
    coco["categories"] = [c for c in coco["categories"] if int(c["id"]) in keep]
    coco["annotations"] = [copy.deepcopy(a) for a in dataset.coco["annotations"] if int(a["category_id"]) in keep]
    with_boxes = {a["image_id"] for a in coco["annotations"]}
    images = []
    for im in dataset.coco["images"]:
        if drop_empty_images and im["id"] not in with_boxes:
            continue
        im = copy.deepcopy(im)
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            if key in im:
                im[key] = [c for c in im[key] if c in keep]
        images.append(im)
    coco["images"] = images
    kept_images = {im["id"] for im in images}
    return DetectionDataset(
        name=dataset.name, split=dataset.split, ann_file=dataset.ann_file,
        images=[img for img in dataset.images if img.id in kept_images],
        categories=[copy.deepcopy(c) for c in dataset.categories if int(c["id"]) in keep],
        annotations={i: [copy.deepcopy(a) for a in anns if int(a["category_id"]) in keep]
                     for i, anns in dataset.annotations.items() if i in kept_images},
        coco=coco,
    )
