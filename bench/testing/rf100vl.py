"""A tiny folder in the layout the `rf100vl` package downloads, for the RF100-VL family's tests and demo.

Three data sets of the real list, in two domains (tasks/rf100vl/_family.yaml):
- rf100vl/aquarium-combined (flora-fauna): a raw Roboflow export, dummy category 0 still in every split;
- rf100vl/actions and rf100vl-fsod/actions (sport): already cleaned; the FSOD train split holds exactly
  10 shots per class (10 images per class, one box each);
- rf100vl/bees (flora-fauna): its test annotation file lists an image that is not on disk.
Not a test module (it holds no tests). `python -m bench.testing.rf100vl DIR` writes it under DIR.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30)]
DATASETS = {  # (variant root, folder): (classes, raw export?, split sizes, images missing from test)
    ("rf100vl", "aquarium-combined"): (["fish", "jelly_fish"], True, {"train": 12, "valid": 4, "test": 4}, 0),
    ("rf100vl", "actions"): (["ball", "player"], False, {"train": 12, "valid": 4, "test": 4}, 0),
    ("rf100vl-fsod", "actions"): (["ball", "player"], False, {"train": 0, "valid": 4, "test": 4}, 0),
    ("rf100vl", "bees"): (["bee"], False, {"train": 6, "valid": 3, "test": 3}, 1),
}
FSOD_SHOTS = 10
INSTRUCTIONS = "# Overview\nAnnotator instructions.\n\n## fish\nA fish seen through aquarium glass. More text.\n"


def _image(rng: random.Random, cats: list[int], size=(72, 56)) -> tuple[Image.Image, list[tuple[int, list[int]]]]:
    w, h = size
    arr = np.full((h, w, 3), 128, dtype=np.uint8)
    anns = []
    for cat in cats:
        bw, bh = rng.randrange(12, 28), rng.randrange(12, 28)
        x, y = rng.randrange(0, w - bw), rng.randrange(0, h - bh)
        arr[y: y + bh, x: x + bw] = COLOURS[cat % len(COLOURS)]
        anns.append((cat, [x, y, bw, bh]))
    return Image.fromarray(arr), anns


def _split(folder: Path, rng: random.Random, classes: list[str], image_cats: list[list[int]], raw: bool,
           missing: int) -> None:
    """Write one split: images and _annotations.coco.json. A raw export numbers categories from 1 after the
    dummy 0 and annotations from 0; a cleaned one (what download() leaves) from 0 and 1."""
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, cats in enumerate(image_cats):
        img, anns = _image(rng, cats)
        name = f"img{i:03d}_jpg.rf.{rng.getrandbits(32):08x}.png"
        if i >= missing:
            img.save(folder / name)
        images.append({"id": i, "file_name": name, "width": img.width, "height": img.height})
        for cat, bbox in anns:
            annotations.append({"id": len(annotations) + (0 if raw else 1), "image_id": i, "category_id": cat + raw,
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0, "segmentation": []})
    project = folder.parent.name
    categories = [{"id": k + raw, "name": c, "supercategory": project} for k, c in enumerate(classes)]
    if raw:
        categories = [{"id": 0, "name": project, "supercategory": "none"}, *categories]
    coco = {"info": {"description": "made by bench.testing.rf100vl"}, "licenses": [], "categories": categories,
            "images": images, "annotations": annotations}
    (folder / "_annotations.coco.json").write_text(json.dumps(coco))


def _image_cats(rng: random.Random, n_classes: int, n: int) -> list[list[int]]:
    return [sorted({rng.randrange(n_classes) for _ in range(rng.randrange(1, 3))}) for _ in range(n)]


def make_rf100vl_folder(data_root: Path) -> Path:
    """Write the folder under `data_root` (the --data-root to pass); returns data_root."""
    for t, ((variant, name), (classes, raw, sizes, missing)) in enumerate(DATASETS.items()):
        rng = random.Random(t)
        root = Path(data_root) / variant / name
        for split, n in sizes.items():
            cats = _image_cats(rng, len(classes), n)
            if variant == "rf100vl-fsod" and split == "train":
                cats = [[k] for k in range(len(classes)) for _ in range(FSOD_SHOTS)]
            _split(root / split, rng, classes, cats, raw, missing if split == "test" else 0)
        if name == "aquarium-combined":
            (root / "README.dataset.txt").write_text(INSTRUCTIONS)
    return Path(data_root)


if __name__ == "__main__":
    print(make_rf100vl_folder(Path(sys.argv[1])))
