"""COCO and Roboflow ODinW json through the registry: loading, indexing, and every bad-data error."""

from __future__ import annotations

import json

import pytest
import torch

from bench.data import DetectionDataset
from bench.tasks.fewshot import fewshot_subset
from bench.tasks.registry import load_registry
from bench.testing.formats import (
    coco_dict,
    make_detection_task_data,
    write_coco_split,
    write_image,
    write_json,
)
from bench.util.errors import UserError


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def test_coco_loads_with_names_from_the_file(reg, tmp_path):
    task = reg.get("coco")
    cats = [(7, "toothbrush"), (1, "person"), (3, "hair_drier")]  # out of order, non-contiguous ids
    data = coco_dict(cats, n_images=3, crowd=True)
    write_coco_split(task, "val", tmp_path, data)
    ds = task.load(data_root=tmp_path)
    assert isinstance(ds, DetectionDataset) and ds.split == "val" and len(ds) == 3
    assert [c["id"] for c in ds.categories] == [1, 3, 7]  # prompt order = category-id order
    assert [c["prompt_name"] for c in ds.categories] == ["person", "hair_drier", "toothbrush"]
    assert ds.ann_file == tmp_path / "coco/annotations/instances_val2017.json"
    assert ds.images[0].path == tmp_path / "coco/val2017/img_0001.jpg"
    # first image: boxes [1,1,3,2] and [2,1,3,2] (xywh) + one crowd box that the targets drop
    boxes = ds.boxes_xyxy(1)
    assert torch.equal(boxes, torch.tensor([[1.0, 1.0, 3.0, 2.0], [2.0, 1.0, 4.0, 2.0]]))  # x2 = x + w - 1
    assert ds.category_ids(1) == [7, 1]
    assert len(ds.coco["annotations"]) == 7  # the metric still sees the crowd box
    img = ds.load_image(2)
    assert img.mode == "RGB" and img.size == (8, 6)
    sub = ds.subset([2, 3])
    assert sub.image_ids == [2, 3] and {a["image_id"] for a in sub.coco["annotations"]} == {2, 3}
    assert len(ds.coco["images"]) == 3  # the original is untouched
    with pytest.raises(UserError, match="not in coco/val"):
        ds.subset([99])
    assert task.data_present(tmp_path, "val") and not task.data_present(tmp_path)  # train missing


def test_every_odinw13_task_loads_its_splits_at_the_official_paths(reg, tmp_path):
    for task in reg.list("odinw13"):
        make_detection_task_data(task, tmp_path)
        assert task.data_present(tmp_path), task.name
        for split in {task.eval_split, task.finetune_split, "train"}:
            ds = task.load(split, tmp_path)
            assert [c["prompt_name"] for c in ds.categories] == list(task.classes), task.name
            assert [c["id"] for c in ds.categories] == list(range(1, len(task.classes) + 1))
            assert len(ds) == 2 and ds.load_image(ds.image_ids[0]).size == (8, 6)
    # PascalVOC's test split is its valid/ split (official quirk)
    voc = reg.get("odinw-pascal-voc")
    assert voc.load("test", tmp_path).coco == voc.load("val", tmp_path).coco
    assert (tmp_path / "odinw/pistols/export/img_0001.jpg").is_file()  # flat layout: images beside the jsons


def test_fewshot_files(reg, tmp_path):
    aq = reg.get("odinw-aquarium")
    assert aq.fewshot_path(1, 3, tmp_path) is None  # nothing shipped yet
    make_detection_task_data(aq, tmp_path, fewshot=(1, 3))
    p = aq.fewshot_path(1, 3, tmp_path)
    assert p == tmp_path / "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco/train/fewshot_train_shot1_seed3.json"
    assert aq.fewshot_path(5, 300, tmp_path) is None
    assert aq.fewshot_path(1, 3, tmp_path, which="val").name == "fewshot_val_shot1_seed3.json"
    fs = fewshot_subset(aq, "train", 1, 3, tmp_path)
    assert fs.source == p.name and len(fs.dataset) == 1
    assert fs.dataset.images[0].path.parent == aq.images_path("train", tmp_path)
    ego = reg.get("odinw-egohands-generic")
    make_detection_task_data(ego, tmp_path, fewshot=(3, 30))
    assert ego.fewshot_path(3, 30, tmp_path, "minival").name == "fewshot_minival_shot3_seed30.json"
    pis = reg.get("odinw-pistols")
    make_detection_task_data(pis, tmp_path, fewshot=(10, 300))
    assert pis.fewshot_path(10, 300, tmp_path) == tmp_path / "odinw/pistols/export/fewshot_train_shot10_seed300.json"


def test_missing_data_root_names_the_path_and_source(reg, tmp_path):
    task = reg.get("odinw-raccoon")
    with pytest.raises(UserError) as e:
        task.load(data_root=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere/odinw/Raccoon/Raccoon.v2-raw.coco/valid/annotations_without_background.json") in msg
    assert "Raccoon.zip" in msg and "how to obtain it" in msg


def test_missing_image_dir(reg, tmp_path):
    task = reg.get("coco")  # (ODinW jsons live inside their image dirs)
    write_json(task.ann_path("val", tmp_path), coco_dict([(1, "person")]))
    with pytest.raises(UserError, match="image directory not found: .*coco/val2017"):
        task.load(data_root=tmp_path)


def _load_bad(reg, tmp_path, data):
    task = reg.get("odinw-thermal-dogs-and-people")
    write_coco_split(task, "val", tmp_path, data, images=False)
    return task.load("val", tmp_path)


def _good():
    return coco_dict([(1, "dog"), (2, "person")])


@pytest.mark.parametrize(
    "corrupt, expect",
    [
        (lambda d: d["annotations"][1]["bbox"].__setitem__(2, -1.0), "negative width/height"),
        (lambda d: d["annotations"][0]["bbox"].__setitem__(3, -0.5), "negative width/height"),
        (lambda d: d["annotations"][0].__setitem__("image_id", 42), "image_id 42, which is not in 'images'"),
        (lambda d: d["annotations"][0].__setitem__("category_id", 9), "category_id 9, which is not in 'categories'"),
        (lambda d: d["images"].append(dict(d["images"][0])), r"duplicate image ids \[1\]"),
        (lambda d: d["annotations"].append(dict(d["annotations"][0])), r"duplicate annotation ids \[1\]"),
        (lambda d: d["categories"].append({"id": 2, "name": "cat"}), r"duplicate category ids \[2\]"),
        (lambda d: d.pop("categories"), "missing top-level key 'categories'"),
        (lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, 3]), "expected \\[x, y, width, height\\]"),
        (lambda d: d["images"][0].__setitem__("width", 0), "'width' must be a positive integer"),
        (lambda d: (d["categories"].pop(), d.__setitem__("annotations", [a for a in d["annotations"] if a["category_id"] == 1])),
         "has 1 categories .* lists 2 classes"),
    ],
)
def test_bad_coco_data_raise_a_message_naming_the_problem(reg, tmp_path, corrupt, expect):
    data = _good()
    corrupt(data)
    with pytest.raises(UserError, match=expect) as e:
        _load_bad(reg, tmp_path, data)
    assert "annotations_without_background.json" in str(e.value)


def test_malformed_json(reg, tmp_path):
    task = reg.get("odinw-raccoon")
    path = task.ann_path("val", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"images": [')
    with pytest.raises(UserError, match=f"malformed JSON in {path}"):
        task.load(data_root=tmp_path)


def test_unreadable_image_fails_at_load_image(reg, tmp_path):
    task = reg.get("odinw-raccoon")
    data = coco_dict([(1, "raccoon")], n_images=2)
    write_coco_split(task, "val", tmp_path, data)
    bad = task.images_path("val", tmp_path) / "img_0002.jpg"
    bad.write_bytes(b"this is not a jpeg")
    ds = task.load(data_root=tmp_path)  # loading the json does not open images
    with pytest.raises(UserError, match=f"cannot read image {bad}"):
        ds.load_image(2)
    bad.unlink()
    with pytest.raises(UserError, match=f"image file not found: {bad}"):
        ds.load_image(2)
    with pytest.raises(UserError, match="image id 5 is not in"):
        ds.load_image(5)


def test_annotation_hash_is_checked_when_pinned(reg, tmp_path):
    import dataclasses

    task = reg.get("odinw-raccoon")
    make_detection_task_data(task, tmp_path)
    pinned = dataclasses.replace(task, ann_sha256={"val": "0" * 64})
    with pytest.raises(UserError, match="sha256"):
        pinned.load("val", tmp_path)
    write_image(tmp_path / "unused.jpg")
    assert json.loads(task.ann_path("val", tmp_path).read_text())["categories"][0]["name"] == "raccoon"
