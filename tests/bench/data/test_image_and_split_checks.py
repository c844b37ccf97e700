"""Images and splits that would give wrong numbers without a word: each is refused by name, or converted
properly with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.coco import build_detection_dataset, validate_coco
from bench.data.training import DetectionTrainSet, usable_images
from bench.data.types import load_image_file
from bench.metrics.coco import clean_detections
from bench.testing.formats import coco_dict, write_image
from bench.util.errors import UserError


@pytest.mark.parametrize("size", [(10000, 10), (10, 10000)])
def test_extreme_aspect_ratios_are_named(tmp_path, size):
    path = tmp_path / "thin.png"
    Image.new("L", size).save(path)
    with pytest.raises(UserError, match=rf"image {path} is {size[0]}x{size[1]} pixels: an aspect ratio past 1:100"):
        load_image_file(path)


def test_a_decompression_bomb_is_named(tmp_path, monkeypatch):
    """PIL refuses past twice MAX_IMAGE_PIXELS; a small limit stands in for a 20000x10000 PNG."""
    path = tmp_path / "bomb.png"
    Image.new("1", (200, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(UserError, match=rf"image {path} is too large to decode: .*decompression bomb"):
        load_image_file(path)


def test_a_16_bit_png_is_scaled_not_white_and_warned(tmp_path, caplog):
    import bench.data.types as types

    path = tmp_path / "deep.png"
    levels = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16)  # [2, 2]
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")
    types._warned_16bit.clear()
    with caplog.at_level(logging.WARNING):
        rgb = np.asarray(load_image_file(path))  # [2, 2, 3]
    assert rgb[..., 0].tolist() == [[0, 64], [128, 255]] and (rgb[..., 0] == rgb[..., 2]).all()
    assert f"image {path} is I;16" in caplog.text and "scaled to 8 bits" in caplog.text


def test_an_image_whose_size_differs_from_its_annotation_is_named(tmp_path):
    data = coco_dict([(1, "cat")], n_images=1, sizes=(8, 6))
    write_image(tmp_path / "img" / data["images"][0]["file_name"], 12, 6)
    ds = build_detection_dataset(data, tmp_path / "ann.json", tmp_path / "img", name="toy", split="val")
    with pytest.raises(UserError, match=r"img_0001.jpg is 12x6 pixels but its annotation says 8x6"):
        ds.load_image(1)


def test_an_empty_split_is_refused_and_a_boxless_one_warned(tmp_path, caplog):
    empty = coco_dict([(1, "cat")], n_images=0)
    with pytest.raises(UserError, match=r"ann.json: split 'val' of toy has no images"):
        build_detection_dataset(empty, tmp_path / "ann.json", tmp_path, name="toy", split="val")
    boxless = {**coco_dict([(1, "cat")], n_images=1), "annotations": []}
    with caplog.at_level(logging.WARNING):
        build_detection_dataset(boxless, tmp_path / "ann.json", tmp_path, name="toy", split="val")
    assert "split 'val' of toy has no boxes" in caplog.text


def _dataset(tmp_path, boxes):
    """One 8x6 image per entry of `boxes` (a list of xywh lists for that image)."""
    data = coco_dict([(1, "cat")], n_images=len(boxes))
    data["annotations"] = [{"id": k + 1, "image_id": i + 1, "category_id": 1, "bbox": b, "area": 1.0, "iscrowd": 0}
                           for k, (i, b) in enumerate((i, b) for i, bs in enumerate(boxes) for b in bs)]
    validate_coco(data, tmp_path / "ann.json")
    return build_detection_dataset(data, tmp_path / "ann.json", tmp_path, name="toy", split="train")


def test_training_drops_zero_area_and_outside_boxes_like_the_official_loader(tmp_path, caplog):
    ds = _dataset(tmp_path, [[[1, 1, 3, 2], [2, 2, 0, 0]],   # one good, one zero-area
                             [[20, 20, 3, 3]],                # outside the 8x6 image
                             [[1, 1, 1, 4]]])                 # width 1: no area in legacy corners
    with caplog.at_level(logging.WARNING):
        assert usable_images(ds) == [1]
    assert "3 of 4 boxes have no area inside their image" in caplog.text and "2 images are left without a box" in caplog.text


def test_a_training_split_without_usable_boxes_is_named(tmp_path):
    ds = _dataset(tmp_path, [[[2, 2, 0, 0]], [[50, 1, 3, 3]]])
    with pytest.raises(UserError, match=r"toy/train \(.*ann.json\) has no image with a usable box .*2 non-crowd boxes, 2 of"):
        DetectionTrainSet(ds, "cat.", torch.ones(1, 4), preprocess=None)


@pytest.mark.parametrize("field, value", [("image_id", 1.5), ("category_id", True), ("image_id", "1")])
def test_prediction_ids_must_be_integers(field, value):
    gt = coco_dict([(1, "cat")], n_images=1)
    det = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.5, field: value}
    with pytest.raises(UserError, match=rf"has {field} {value!r}, not an integer"):
        clean_detections([det], gt)
    assert clean_detections([{**det, field: 1.0}], gt)[0][field] == 1  # 1.0 is an integer written as a float


def test_predict_names_a_thin_image(tmp_path, capsys):
    from bench.cli import main

    path = tmp_path / "thin.png"
    Image.new("RGB", (5000, 10)).save(path)
    assert main(["predict", "--model", "glip-tiny", "--image", str(path), "--prompt", "cat"]) == 2
    assert f"image {Path(path)} is 5000x10 pixels" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["thin", "resized"])
def test_a_run_names_a_bad_image_with_rc_2(tmp_path, monkeypatch, capsys, kind):
    from bench.cli import main
    from bench.testing.world import make_world

    _, data_root = make_world(tmp_path, monkeypatch)
    image = data_root / "runner" / "runner-shapes-a" / "val" / "002.png"
    w, h = Image.open(image).size
    Image.new("RGB", (2000, 10) if kind == "thin" else (w + 1, h)).save(image)
    rc = main(["run", "--model", "glip-tiny", "--tasks", "runner-shapes-a", "--regime", "zero-shot",
               "--data-root", str(data_root), "--results", str(tmp_path / "results"), "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and f"image {image} is" in err and "Traceback" not in err, err
