"""COCO-format detection json (COCO instances, Roboflow ODinW exports): read, validate, index.

Every problem raises a UserError that names the file and the offending entry, so a broken download is
found at load time, not as a crash (or a silently wrong AP) deep inside an evaluation. Category ids are
kept as given in the file (ODinW's annotations_without_background.json starts at 1); prompt order is
category-id order (maskrcnn_benchmark/engine/inference.py, create_queries_and_maps: sorted keys).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.data.types import DetectionDataset, ImageInfo
from bench.util.errors import UserError
from bench.util.io import read_json
from bench.util.logs import get_logger

log = get_logger("data")


def read_ann_json(path: Path, source: str = "") -> Any:
    """Read an annotation json; a missing file names the expected path and where the data come from."""
    return read_json(path, what="annotation file", how=source)


def check_images_dir(images_dir: Path, ann_file: Path, source: str = "") -> None:
    if not images_dir.is_dir():
        how = f"\n  how to obtain it: {source}" if source else ""
        raise UserError(f"image directory not found: {images_dir} (annotations: {ann_file}){how}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _duplicates(ids: Sequence[Any]) -> list[Any]:
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def _check_list(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    if key not in data:
        raise UserError(f"{path}: missing top-level key {key!r} (not a COCO-format detection file?)")
    value = data[key]
    if not isinstance(value, list):
        raise UserError(f"{path}: {key!r} must be a list, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise UserError(f"{path}: {key}[{i}] must be an object, got {type(item).__name__}")
    return value


def _check_int_field(item: dict[str, Any], key: str, where: str, path: Path, positive: bool = False) -> int:
    if key not in item:
        raise UserError(f"{path}: {where} has no {key!r}")
    v = item[key]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not _is_int(v) or (positive and v <= 0):
        kind = "a positive integer" if positive else "an integer"
        raise UserError(f"{path}: {where} field {key!r} must be {kind}, got {item[key]!r}")
    return v


def validate_coco(data: Any, path: Path, *, need_file_name: bool = True) -> None:
    """Check the structure of a COCO-format detection dict; raise a UserError naming the problem.

    Checks: top-level images / annotations / categories lists; integer ids with no duplicates;
    image sizes; every annotation's image_id and category_id known; bbox = 4 finite numbers with
    non-negative width and height.
    """
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with images/annotations/categories, got {type(data).__name__}")
    images = _check_list(data, "images", path)
    anns = _check_list(data, "annotations", path)
    cats = _check_list(data, "categories", path)

    for i, im in enumerate(images):
        where = f"images[{i}]"
        _check_int_field(im, "id", where, path)
        _check_int_field(im, "width", f"{where} (id {im['id']})", path, positive=True)
        _check_int_field(im, "height", f"{where} (id {im['id']})", path, positive=True)
        if need_file_name and not isinstance(im.get("file_name"), str):
            raise UserError(f"{path}: {where} (id {im['id']}) has no string 'file_name'")
    for i, c in enumerate(cats):
        _check_int_field(c, "id", f"categories[{i}]", path)
        if not isinstance(c.get("name"), str):
            raise UserError(f"{path}: categories[{i}] (id {c['id']}) has no string 'name'")
    for i, a in enumerate(anns):
        _check_int_field(a, "id", f"annotations[{i}]", path)
        where = f"annotation id {a['id']} (annotations[{i}])"
        _check_int_field(a, "image_id", where, path)
        _check_int_field(a, "category_id", where, path)

    for key, items in (("image", images), ("category", cats), ("annotation", anns)):
        dup = _duplicates([int(x["id"]) for x in items])
        if dup:
            raise UserError(f"{path}: duplicate {key} ids {dup[:10]}{' ...' if len(dup) > 10 else ''}")

    image_ids = {int(im["id"]) for im in images}
    cat_ids = {int(c["id"]) for c in cats}
    for i, a in enumerate(anns):
        where = f"annotation id {a['id']} (annotations[{i}])"
        if int(a["image_id"]) not in image_ids:
            raise UserError(f"{path}: {where} points at image_id {a['image_id']}, which is not in 'images'")
        if int(a["category_id"]) not in cat_ids:
            raise UserError(
                f"{path}: {where} points at category_id {a['category_id']}, which is not in 'categories' "
                f"(known ids: {sorted(cat_ids)[:20]})"
            )
        box = a.get("bbox")
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            raise UserError(f"{path}: {where} has bbox {box!r}; expected [x, y, width, height], 4 finite numbers")
        if box[2] < 0 or box[3] < 0:
            raise UserError(f"{path}: {where} has a box with negative width/height: bbox {box} (COCO boxes are xywh)")


def prompt_names_for(
    cats: list[dict[str, Any]], path: Path, classes: Sequence[str] | None, renames: dict[str, str] | None
) -> list[str]:
    """The plain prompted name of each category (id order).

    With `classes` (the YAML list, the official DATASETS.OVERRIDE_CATEGORY of configs/odinw_13) the i-th
    category by id takes classes[i], so the counts must match; otherwise the file's names are used,
    mapped through `renames` (file name -> prompted name).
    """
    renames = dict(renames or {})
    file_names = [c["name"] for c in cats]
    unknown = sorted(set(renames) - set(file_names))
    if unknown:
        raise UserError(f"{path}: renames name categories {unknown} that the file does not have (file names: {file_names[:20]})")
    names = [renames.get(n, n) for n in file_names]
    if classes is None:
        return names
    if len(classes) != len(cats):
        raise UserError(
            f"{path} has {len(cats)} categories {file_names[:20]} but the task lists {len(classes)} classes "
            f"{list(classes)[:20]}; the task's `classes` must name every category, in category-id order"
        )
    for c, name, cls in zip(cats, names, classes):
        if name != cls:
            log.debug("%s: category id %s is %r in the file, prompted as %r", path, c["id"], c["name"], cls)
    return list(classes)


def build_detection_dataset(
    data: dict[str, Any],
    ann_file: Path,
    images_dir: Path,
    *,
    name: str,
    split: str,
    classes: Sequence[str] | None = None,
    renames: dict[str, str] | None = None,
    file_name_of: Callable[[dict[str, Any]], str] | None = None,
) -> DetectionDataset:
    """Index a validated COCO-format dict into a DetectionDataset (images and categories by id)."""
    file_name_of = file_name_of or (lambda im: im["file_name"])
    cats = sorted(data["categories"], key=lambda c: int(c["id"]))
    prompt_names = prompt_names_for(cats, ann_file, classes, renames)
    categories = [{**c, "prompt_name": p} for c, p in zip(cats, prompt_names)]
    images = []
    for im in sorted(data["images"], key=lambda im: int(im["id"])):
        fname = file_name_of(im)
        images.append(ImageInfo(int(im["id"]), fname, images_dir / fname, int(im["width"]), int(im["height"])))
    if not images:
        raise UserError(f"{ann_file}: split {split!r} of {name} has no images; its metric would be NaN. Check the "
                        "annotation file, or pick another split")
    annotations: dict[int, list[dict[str, Any]]] = {img.id: [] for img in images}
    for a in data["annotations"]:
        annotations[int(a["image_id"])].append(a)
    if not data["annotations"]:
        log.warning("%s: split %r of %s has no boxes: its AP is not defined (NaN)", ann_file, split, name)
    return DetectionDataset(
        name=name, split=split, ann_file=ann_file, images=images, categories=categories,
        annotations=annotations, coco=data,
    )


def load_coco(
    ann_file: Path,
    images_dir: Path,
    *,
    name: str,
    split: str,
    classes: Sequence[str] | None = None,
    renames: dict[str, str] | None = None,
    source: str = "",
    validate: Callable[[Any, Path], None] = validate_coco,
    file_name_of: Callable[[dict[str, Any]], str] | None = None,
) -> DetectionDataset:
    """Load a COCO / Roboflow (ODinW) detection json. Images are opened lazily (load_image).

    `validate` and `file_name_of` let a COCO-based format (LVIS) reuse this path with its own checks."""
    ann_file, images_dir = Path(ann_file), Path(images_dir)
    data = read_ann_json(ann_file, source)
    validate(data, ann_file)
    check_images_dir(images_dir, ann_file, source)
    return build_detection_dataset(
        data, ann_file, images_dir, name=name, split=split, classes=classes, renames=renames,
        file_name_of=file_name_of,
    )
