"""Referring expressions: MDETR's final_refcoco_*/final_refcoco+_*/final_refcocog_* json (and gRefCOCO's
files in the same layout).

One json entry ("images" list) per (image, expression): `caption` is the expression, `file_name` the COCO
train2014 image. Its annotations (matched by image_id) are the referred boxes, COCO xywh: exactly one in
RefCOCO/+/g; in gRefCOCO several (multi-target) or none (no-target; gRefCOCO's files mark it with one
annotation of category_id -1). An expression becomes a GroundingSample with one phrase spanning the whole
expression, whose boxes are the referred boxes in xyxy (x + w, no +1, as MDETR's and gRefCOCO's evaluators
convert them), empty for no-target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.coco import _duplicates, _is_int, read_ann_json
from bench.data.types import GroundingDataset, GroundingSample, ImageInfo, Phrase
from bench.util.errors import UserError

NO_TARGET_CATEGORY = -1  # gRefCOCO: an expression that refers to nothing in the image


def _validate(data: Any, path: Path) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations", []), list):
        raise UserError(f"{path}: expected an MDETR referring-expression json with 'images' (entries) and 'annotations' lists")
    for i, e in enumerate(data["images"]):
        if not isinstance(e, dict) or not _is_int(e.get("id")) or not isinstance(e.get("caption"), str) \
                or not isinstance(e.get("file_name"), str):
            raise UserError(f"{path}: entry images[{i}] needs an integer 'id', a 'file_name' and a 'caption' string "
                            "(is this an MDETR final_refcoco json?)")
        if not e["caption"].strip():
            raise UserError(f"{path}: entry id {e['id']} has an empty expression")
    dup = _duplicates([e["id"] for e in data["images"]])
    if dup:
        raise UserError(f"{path}: duplicate entry ids {dup[:10]}")
    ids = {e["id"] for e in data["images"]}
    for i, a in enumerate(data.get("annotations", [])):
        if not isinstance(a, dict) or a.get("image_id") not in ids:
            raise UserError(f"{path}: annotation {i} points at image_id "
                            f"{a.get('image_id') if isinstance(a, dict) else a!r}, which is not an entry id")
        box = a.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
            raise UserError(f"{path}: annotation {i} (entry {a['image_id']}) has bbox {box!r}; expected [x, y, width, height]")
        if a.get("category_id") != NO_TARGET_CATEGORY and (box[2] < 0 or box[3] < 0):
            raise UserError(f"{path}: annotation {i} (entry {a['image_id']}) has a box with negative width/height: {box}")


def _targets(anns: list[dict[str, Any]]) -> list[list[float]]:
    """Referred boxes of one entry, xyxy; none for a gRefCOCO no-target entry."""
    if any(a.get("category_id") == NO_TARGET_CATEGORY for a in anns):
        return []
    return [[float(x), float(y), float(x + w), float(y + h)] for x, y, w, h in (a["bbox"] for a in anns)]


def load_mdetr_refexp(ann_file: Path, images_dir: Path, *, name: str, split: str, source: str = "",
                      allow_no_target: bool = False) -> GroundingDataset:
    """Load an MDETR referring-expression json; entries in id order, images shared by file name.

    allow_no_target: gRefCOCO (expressions with zero or several targets); RefCOCO/+/g entries need exactly
    one referred box, and anything else is an error naming the entry.
    """
    ann_file, images_dir = Path(ann_file), Path(images_dir)
    data = read_ann_json(ann_file, source)
    _validate(data, ann_file)
    if not images_dir.is_dir():
        how = f"\n  how to obtain it: {source}" if source else ""
        raise UserError(f"image directory not found: {images_dir}{how}")
    by_entry: dict[int, list[dict[str, Any]]] = {}
    for a in data.get("annotations", []):
        by_entry.setdefault(a["image_id"], []).append(a)
    images: dict[str, ImageInfo] = {}
    samples = []
    for e in sorted(data["images"], key=lambda e: e["id"]):
        boxes = _targets(by_entry.get(e["id"], []))
        if not allow_no_target and len(boxes) != 1:
            raise UserError(f"{ann_file}: entry {e['id']} ({e['caption']!r}) refers to {len(boxes)} boxes; a RefCOCO-style "
                            "task needs exactly one (zero or several: use a gRefCOCO task, metric grec_accuracy)")
        fname = e["file_name"]
        if fname not in images:
            w, h = int(e.get("width", 0)), int(e.get("height", 0))
            images[fname] = ImageInfo(len(images) + 1, fname, images_dir / fname, w, h)
        phrase = Phrase("0", [(0, len(e["caption"]))], boxes, [str(e.get("dataset_name", ""))] if e.get("dataset_name") else [])
        samples.append(GroundingSample(e["id"], images[fname], e["caption"], [phrase], int(e.get("sentence_id", 0)),
                                       int(e.get("original_img_id", e.get("original_id", 0)) or 0)))
    return GroundingDataset(name=name, split=split, ann_file=ann_file, images=list(images.values()), samples=samples)
