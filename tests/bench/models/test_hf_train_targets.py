"""transformers training targets are continuous boxes: COCO [x, y, w, h] -> normalised (x + w/2, y + h/2, w, h).

DETR-style losses (and transformers' own image processors) read a COCO box as continuous coordinates, with
no legacy +1 pixel; a flip mirrors the box exactly (x -> W - x). Hand-computed: the box [34, 9, 19, 17] in a
100 x 50 image has centre (43.5, 17.5); flipped, (56.5, 17.5).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.data.types import DetectionDataset, ImageInfo
from bench.models.hf.training import CaptionTrainSet

W, H = 100, 50


def one_box_split(tmp_path: Path) -> DetectionDataset:
    path = tmp_path / "a.png"
    Image.new("RGB", (W, H)).save(path)
    ann = {"id": 1, "image_id": 3, "category_id": 5, "bbox": [34.0, 9.0, 19.0, 17.0], "area": 323.0, "iscrowd": 0}
    return DetectionDataset(name="t", split="train", ann_file=tmp_path / "a.json",
                            images=[ImageInfo(id=3, file_name="a.png", width=W, height=H, path=path)],
                            categories=[{"id": 5, "name": "thing", "prompt_name": "thing"}],
                            annotations={3: [ann]}, coco={})


@pytest.mark.parametrize(("flip", "centre_x"), [(0.0, 43.5), (1.0, W - 43.5)])
def test_targets_are_continuous_cxcywh_and_the_flip_mirrors_them(tmp_path, flip, centre_x):
    train = CaptionTrainSet(one_box_split(tmp_path), [5], {}, image_processor=None, seed=0, flip_prob=flip)
    _, cxcywh, classes = train[0]
    pixels = cxcywh * torch.tensor([W, H, W, H])
    assert torch.allclose(pixels, torch.tensor([[centre_x, 17.5, 19.0, 17.0]]), atol=1e-4), pixels
    assert classes.tolist() == [0]
