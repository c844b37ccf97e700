"""LVIS v1 json (val, MDETR minival): COCO-format plus the federated fields the LVIS metrics need.

Per image: `neg_category_ids` (verified absent) and `not_exhaustive_category_ids`; per category:
`frequency` in r/c/f (for APr/APc/APf). Images are COCO 2017 train/val files; as the official
LvisDetection does, the file path is the last two parts of `coco_url` ("val2017/0000....jpg") under the
images dir, falling back to `file_name` when a file has no coco_url. Class names come from the file
(1203 for v1) in category-id order (maskrcnn_benchmark/engine/inference.py,
create_queries_and_maps: sorted keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.coco import _is_int, load_coco, validate_coco
from bench.data.types import DetectionDataset
from bench.util.errors import UserError

FREQUENCIES = ("r", "c", "f")


def lvis_file_name(image: dict[str, Any]) -> str:
    """The image's path relative to the COCO images root (official LvisDetection: coco_url's last 2 parts)."""
    url = image.get("coco_url")
    if isinstance(url, str) and url:
        return "/".join(url.split("/")[-2:])
    return image["file_name"]


def validate_lvis(data: Any, path: Path) -> None:
    """COCO checks plus the federated fields; errors name the file, the image or category and the field."""
    validate_coco(data, path, need_file_name=False)
    cat_ids = {int(c["id"]) for c in data["categories"]}
    for c in data["categories"]:
        if c.get("frequency") not in FREQUENCIES:
            raise UserError(
                f"{path}: category id {c['id']} ({c['name']!r}) has frequency {c.get('frequency')!r}; "
                f"LVIS needs one of {FREQUENCIES} (is this an LVIS v1 file?)"
            )
    for i, im in enumerate(data["images"]):
        where = f"image id {im['id']} (images[{i}])"
        if not (isinstance(im.get("coco_url"), str) or isinstance(im.get("file_name"), str)):
            raise UserError(f"{path}: {where} has neither 'coco_url' nor 'file_name'")
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            ids = im.get(key)
            if not isinstance(ids, list) or not all(_is_int(x) for x in ids):
                raise UserError(f"{path}: {where} needs {key!r} as a list of category ids, got {ids!r}")
            unknown = sorted(set(ids) - cat_ids)
            if unknown:
                raise UserError(f"{path}: {where} {key} lists unknown category ids {unknown[:10]}")


def load_lvis(ann_file: Path, images_dir: Path, **kwargs: Any) -> DetectionDataset:
    """Load an LVIS v1 json (keyword arguments as `load_coco`); the returned `coco` dict keeps every
    LVIS field for the metric."""
    return load_coco(ann_file, images_dir, validate=validate_lvis, file_name_of=lvis_file_name, **kwargs)
