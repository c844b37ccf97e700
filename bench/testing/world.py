"""A tiny two-task detection world in the real formats (task YAMLs + COCO json + PNGs), for the runner tests.

Not a test module itself (it holds no tests); the runner tests import `make_world` from it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

TASKS = {
    "runner-shapes-a": ["red square", "blue circle"],
    "runner-shapes-b": ["green square", "yellow circle", "red circle"],
}
SPLITS = {"train": 10, "val": 4, "test": 3}
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 230, 30)}


def _image(rng: random.Random, classes: list[str], n_objects: int, size=(80, 64)):
    w, h = size
    arr = np.full((h, w, 3), 128, dtype=np.uint8)
    anns = []
    for _ in range(n_objects):
        k = rng.randrange(len(classes))
        colour = COLOURS[classes[k].split()[0]]
        bw, bh = rng.randrange(12, 30), rng.randrange(12, 30)
        x, y = rng.randrange(0, w - bw), rng.randrange(0, h - bh)
        arr[y: y + bh, x: x + bw] = colour
        anns.append((k + 1, [x, y, bw, bh]))
    return Image.fromarray(arr), anns


def make_world(tmp_path: Path, monkeypatch=None, fewshot_files: bool = False) -> tuple[Path, Path]:
    """Write tasks/ and data/ under tmp_path; returns (tasks_dir, data_root). Sets GLIP_BENCH_TASKS if asked."""
    tasks_dir, data_root = tmp_path / "tasks", tmp_path / "data"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for t, (name, classes) in enumerate(TASKS.items()):
        rng = random.Random(t)
        root = data_root / "runner" / name
        for split, n in SPLITS.items():
            images, annotations = [], []
            for i in range(1, n + 1):
                img, anns = _image(rng, classes, rng.randrange(1, 3))
                (root / split).mkdir(parents=True, exist_ok=True)
                img.save(root / split / f"{i:03d}.png")
                images.append({"id": i, "file_name": f"{i:03d}.png", "width": img.width, "height": img.height})
                for cat, bbox in anns:
                    annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": cat, "bbox": bbox,
                                        "area": bbox[2] * bbox[3], "iscrowd": 0})
            coco = {"images": images, "annotations": annotations,
                    "categories": [{"id": k + 1, "name": c, "supercategory": "shape"} for k, c in enumerate(classes)]}
            (root / split / "ann.json").write_text(json.dumps(coco))
        fewshot = ""
        if fewshot_files:
            fewshot = "fewshot:\n  train: train/fewshot_train_shot{shots}_seed{seed}.json\n"
        (tasks_dir / f"{name}.yaml").write_text(
            f"name: {name}\nversion: 1\ndescription: runner test world {name}\nsource: made by the runner tests\n"
            f"groups: [runner-world]\nformat: coco\nroot: runner/{name}\n"
            "splits:\n  train: {ann: train/ann.json, images: train}\n  val: {ann: val/ann.json, images: val}\n"
            "  test: {ann: test/ann.json, images: test}\n"
            f"eval_split: val\nfinetune_split: test\n{fewshot}classes: {json.dumps(classes)}\nrenames: {{}}\n"
            "prompt_sets:\n  plain: {}\nseparator: \". \"\nchunk_size: null\ndetections_per_image: 100\n"
            "metric: coco_bbox\nann_sha256: {}\n"
        )
    if monkeypatch is not None:
        monkeypatch.setenv("GLIP_BENCH_TASKS", str(tasks_dir))
        from bench.tasks.registry import load_registry

        load_registry(tasks_dir, reload=True)
    return tasks_dir, data_root
