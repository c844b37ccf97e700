"""The synthetic world's files are valid in the real formats: COCO / ODinW (pycocotools), few-shot
splits (the official quota rule), LVIS (lvis-api), MDETR + Flickr30K Entities, and the task registry."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest

from bench.synthetic import generate
from bench.tasks.fewshot import SEEDS as FEWSHOT_SEEDS
from bench.tasks.fewshot import SHOTS as FEWSHOT_SHOTS
from bench.tasks.fewshot import fewshot_subset

DETECTION = ["synth-shapes", "synth-colours", "synth-compositions", "synth-novel", "synth-crowded"]
SYNTH_TASKS = DETECTION + ["synth-grounding", "synth-lvis", "synth-refexp"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthfmt")
    # big enough that every class can fill a 10-shot quota in the train split
    generate(root, seed=0, scale=0.15, tasks=SYNTH_TASKS)
    return root


def _coco_eval_gt_as_detections(ann_file: Path) -> float:
    """AP of the ground truth scored against itself with pycocotools: 1.0 for a valid file."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(ann_file))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt.dataset["annotations"]]
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


@pytest.mark.parametrize("task", DETECTION)
def test_odinw_exports_are_valid_coco(data_root: Path, task: str) -> None:
    from pycocotools.coco import COCO

    root = data_root / "synthetic" / task
    for split in ("train", "valid", "test"):
        ann = root / split / "annotations_without_background.json"
        coco = COCO(str(ann))
        assert sorted(coco.getCatIds()) == list(range(1, len(coco.getCatIds()) + 1))
        for img in coco.dataset["images"]:
            assert (root / split / img["file_name"]).is_file()
        assert _coco_eval_gt_as_detections(ann) == pytest.approx(1.0)
    for split, which in (("train", "train"), ("valid", "val")):
        for k in FEWSHOT_SHOTS:
            for s in FEWSHOT_SEEDS:
                COCO(str(root / split / f"fewshot_{which}_shot{k}_seed{s}.json"))


def _shuffled_ids(ids: list[int], seed: int) -> list[int]:
    order = sorted(ids)
    # the official order (COCODataset in maskrcnn_benchmark/data/datasets/coco.py)
    random.Random(seed).shuffle(order)
    return order


@pytest.mark.parametrize("task", ["synth-colours", "synth-novel", "synth-crowded"])
def test_fewshot_files_meet_the_quota_greedily_and_differ_across_seeds(data_root: Path, task: str) -> None:
    train_dir = data_root / "synthetic" / task / "train"
    full = json.loads((train_dir / "annotations_without_background.json").read_text())
    cats_of: dict[int, set[int]] = {im["id"]: set() for im in full["images"]}
    for a in full["annotations"]:
        cats_of[a["image_id"]].add(a["category_id"])
    full_quota = 0
    for k in FEWSHOT_SHOTS:
        chosen_sets = []
        for seed in FEWSHOT_SEEDS:
            sub = json.loads((train_dir / f"fewshot_train_shot{k}_seed{seed}.json").read_text())
            ids = {im["id"] for im in sub["images"]}
            chosen_sets.append(frozenset(ids))
            assert sub["categories"] == full["categories"]
            assert sub["annotations"] == [a for a in full["annotations"] if a["image_id"] in ids]
            for c in full["categories"]:
                n_img = sum(c["id"] in cats_of[i] for i in ids)
                n_inst = sum(a["category_id"] == c["id"] for a in sub["annotations"])
                available = sum(c["id"] in cs for cs in cats_of.values())
                # the quota is met whenever the split allows it (image-level counting)
                assert n_img >= min(k, available) and n_inst >= min(k, available), (task, k, seed, c["name"])
                full_quota += available >= k
            # greedy: each kept image still had a category under quota when (in shuffled order) it was taken
            taken: list[int] = []
            for i in _shuffled_ids(list(cats_of), seed):
                if i in ids:
                    assert any(sum(c in cats_of[j] for j in taken) < k for c in cats_of[i]), (task, k, seed, i)
                    taken.append(i)
                else:  # and no skipped image could have helped
                    assert all(sum(c in cats_of[j] for j in taken) >= k for c in cats_of[i])
        assert len(set(chosen_sets)) == len(FEWSHOT_SEEDS), f"{task} {k}-shot files coincide across seeds"
    assert full_quota > 0.9 * len(full["categories"]) * len(FEWSHOT_SHOTS) * len(FEWSHOT_SEEDS)
    val_dir = data_root / "synthetic" / task / "valid"
    assert (val_dir / "fewshot_val_shot3_seed30.json").is_file()


def test_lvis_files_are_valid_lvis_and_score_perfectly(data_root: Path) -> None:
    from lvis import LVIS, LVISEval, LVISResults

    if not hasattr(np, "float"):  # lvis 0.5.3 uses np.float, removed in numpy >= 1.24
        np.float = float  # type: ignore[attr-defined]
    root = data_root / "synthetic" / "synth-lvis"
    for split in ("train", "val", "test"):
        gt = LVIS(str(root / "annotations" / f"lvis_{split}.json"))
        cats = gt.dataset["categories"]
        assert len(cats) == 96 and {c["frequency"] for c in cats} == {"r", "c", "f"}
        for img in gt.dataset["images"]:
            present = {a["category_id"] for a in gt.img_ann_map[img["id"]]}
            assert not present & set(img["neg_category_ids"]) and img["neg_category_ids"]
            assert set(img["not_exhaustive_category_ids"]) <= present
            assert (root / "images" / img["coco_url"].split("/")[-2] / img["file_name"]).is_file()
    train = json.loads((root / "annotations" / "lvis_train.json").read_text())
    counted = {c["id"]: c["instance_count"] for c in train["categories"]}
    assert sum(counted.values()) == len(train["annotations"])
    gt = LVIS(str(root / "annotations" / "lvis_val.json"))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt.dataset["annotations"]]
    ev = LVISEval(gt, LVISResults(copy.deepcopy(gt), dets), "bbox")
    ev.run()
    assert ev.results["AP"] == pytest.approx(1.0)


def test_mdetr_grounding_json_and_entities_agree(data_root: Path) -> None:
    from pycocotools.coco import COCO

    root = data_root / "synthetic" / "synth-grounding"
    for split in ("train", "val", "test"):
        ann = root / "mdetr_annotations" / f"final_flickr_separateGT_{split}.json"
        coco = COCO(str(ann))  # MDETR json is COCO-shaped
        recall = json.loads((root / "mdetr_annotations" / f"flickr_recall_gt_{split}.json").read_text())
        assert [r["image_id"] for r in recall] == [im["id"] for im in coco.dataset["images"]]
        listed = (root / "flickr30k_entities" / f"{split}.txt").read_text().split()
        assert sorted(listed) == sorted({str(im["original_img_id"]) for im in coco.dataset["images"]})
        for im, gt in zip(coco.dataset["images"], recall):
            assert len(im["tokens_positive_eval"]) == len(gt["phrases"]) >= 1
            anns = coco.imgToAnns[im["id"]]
            for p_idx, (spans, phrase) in enumerate(zip(im["tokens_positive_eval"], gt["phrases"])):
                boxes = [a["bbox"] for a in anns if a["phrase_ids"] == p_idx]
                assert all(a["tokens_positive"] == spans for a in anns if a["phrase_ids"] == p_idx)
                assert phrase["boxes"] == [[x, y, x + w - 1, y + h - 1] for x, y, w, h in boxes]
                assert im["caption"][spans[0][0]:spans[0][1]].split()[-1].startswith(phrase["types"][0])  # shape(s)


def test_every_synthetic_task_loads_through_the_registry(data_root: Path) -> None:
    registry = pytest.importorskip("bench.tasks.registry")
    tasks = {t.name: t for t in registry.load_registry().list() if t.root.startswith("synthetic/")}
    assert sorted(tasks) == sorted(SYNTH_TASKS)
    assert sorted(t.name for t in registry.resolve_tasks("synth")) == sorted(DETECTION)
    for name, task in tasks.items():
        assert task.data_present(data_root), name
        for split in task.splits:
            ds = task.load(split, data_root)
            if task.format == "mdetr_flickr":
                # Entities XML/TXT (read by the loader) and the recall json (ours) hold the same ground truth
                ours = json.loads((task.root_path(data_root) / "mdetr_annotations" / f"flickr_recall_gt_{split}.json").read_text())
                theirs = ds.entities
                assert [e["image_id"] for e in theirs] == [e["image_id"] for e in ours]
                for t, o in zip(theirs, ours):
                    assert [(p["boxes"], p["types"]) for p in t["phrases"]] == [(p["boxes"], p["types"]) for p in o["phrases"]]
                continue
            if task.format == "mdetr_refexp":  # one referred box per expression, inside the image
                assert len(ds) > 0 and all(len(s.phrases) == 1 and len(s.phrases[0].boxes_xyxy) == 1 for s in ds.samples)
                assert all(0 <= b[0] < b[2] <= s.image.width and 0 <= b[1] < b[3] <= s.image.height
                           for s in ds.samples for b in s.phrases[0].boxes_xyxy)
                ds.load_image(ds.samples[0].id)
                continue
            assert ds.images and sum(len(v) for v in ds.annotations.values()) > 0
            ds.load_image(ds.images[0].id)
            names, _, _ = task.prompt_names("plain", [c["name"] for c in ds.categories])
            if task.format == "lvis":
                assert names[0] == "red circle" and len(names) == 96
            else:
                assert names == list(task.classes)
        if task.fewshot:
            fs = fewshot_subset(task, "train", 1, 3, data_root)
            assert fs.source == "fewshot_train_shot1_seed3.json"
            assert task.fewshot_path(10, 300, data_root, which="val") is not None
            assert 0 < len(fs.dataset.images) <= len(task.load("train", data_root).images)
