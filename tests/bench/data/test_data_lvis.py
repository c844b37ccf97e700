"""LVIS v1 json (federated fields) through the registry."""

from __future__ import annotations

import pytest

from bench.tasks.registry import load_registry
from bench.testing.formats import lvis_dict, make_lvis_task_data, write_json
from bench.util.errors import UserError

CATS = [(3, "bow_(weapon)", "r"), (1, "aerosol_can", "c"), (12, "baseball_bat", "f")]


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def test_lvis_minival_loads_with_federated_fields(reg, tmp_path):
    task = reg.get("lvis-minival")
    data = make_lvis_task_data(task, tmp_path, CATS)
    ds = task.load(data_root=tmp_path)
    assert [c["id"] for c in ds.categories] == [1, 3, 12]
    assert [c["prompt_name"] for c in ds.categories] == ["aerosol_can", "bow_(weapon)", "baseball_bat"]
    assert [c["frequency"] for c in ds.categories] == ["c", "r", "f"]
    # images come from COCO val2017 and train2017 through coco_url (official LvisDetection)
    assert ds.images[0].path == tmp_path / "coco/val2017/000000001000.jpg"
    assert ds.images[1].path == tmp_path / "coco/train2017/000000001001.jpg"
    assert ds.load_image(1001).size == (8, 6)
    im = ds.coco["images"][0]
    assert im["neg_category_ids"] == [12] and im["not_exhaustive_category_ids"] == [3]
    assert ds.coco is not None and ds.coco["categories"] == data["categories"]
    # the plain prompt: file names through the official clean_name, category-id order
    names, _, _ = task.prompt_names("plain", [c["name"] for c in ds.categories])
    assert names == ["aerosol can", "bow ", "baseball bat"]
    sub = ds.subset([1002])
    assert [i["id"] for i in sub.coco["images"]] == [1002] and sub.coco["images"][0]["neg_category_ids"] == [12]


def test_lvis_file_is_readable_by_the_lvis_api(reg, tmp_path):
    """The fixture is the real format: lvis-api indexes it the same way."""
    from lvis import LVIS

    task = reg.get("lvis-val")
    make_lvis_task_data(task, tmp_path, CATS)
    api = LVIS(str(task.ann_path("val", tmp_path)))
    ds = task.load(data_root=tmp_path)
    assert sorted(api.get_cat_ids()) == [c["id"] for c in ds.categories]
    assert sorted(api.get_img_ids()) == ds.image_ids
    for iid in ds.image_ids:
        assert sorted(a["id"] for a in api.load_anns(api.get_ann_ids(img_ids=[iid]))) == \
            sorted(a["id"] for a in ds.annotations[iid])


@pytest.mark.parametrize(
    "corrupt, expect",
    [
        (lambda d: d["categories"][0].pop("frequency"), "frequency None"),
        (lambda d: d["images"][0].pop("neg_category_ids"), "needs 'neg_category_ids'"),
        (lambda d: d["images"][1].__setitem__("not_exhaustive_category_ids", [99]), r"unknown category ids \[99\]"),
        (lambda d: d["annotations"][0]["bbox"].__setitem__(2, -2.0), "negative width/height"),
        (lambda d: d["annotations"][0].__setitem__("category_id", 4), "category_id 4, which is not in"),
        (lambda d: [im.pop("coco_url") for im in d["images"]], "neither 'coco_url' nor 'file_name'"),
    ],
)
def test_bad_lvis_data(reg, tmp_path, corrupt, expect):
    task = reg.get("lvis-minival")
    data = lvis_dict(CATS)
    corrupt(data)
    write_json(task.ann_path("minival", tmp_path), data)
    with pytest.raises(UserError, match=expect) as e:
        task.load(data_root=tmp_path)
    assert "lvis_v1_minival_inserted_image_name.json" in str(e.value)


def test_missing_lvis_file_names_the_download(reg, tmp_path):
    with pytest.raises(UserError) as e:
        reg.get("lvis-minival").load(data_root=tmp_path)
    assert str(tmp_path / "coco/annotations/lvis_v1_minival_inserted_image_name.json") in str(e.value)
    assert "wget" in str(e.value)
