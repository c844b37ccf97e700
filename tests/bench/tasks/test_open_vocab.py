"""OV-COCO / OV-LVIS: the base/novel split as data, the base and all-class views, the metric's novel/base
numbers, and training that never sees a novel class (its prompts or its boxes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.metrics import evaluate
from bench.tasks.fewshot import fewshot_subset
from bench.tasks.registry import _validate, load_registry
from bench.testing.formats import coco_dict, write_coco_split
from bench.util.errors import UserError


@pytest.fixture
def ov_tasks():
    """The shipped tasks (the runs below look their task up by name there)."""
    return load_registry(reload=True)


def test_shipped_ov_tasks_declare_the_standard_splits():
    reg = load_registry(reload=True)
    coco = reg.get("ov-coco").open_vocab
    assert len(coco["base"]) == 48 and len(coco["novel"]) == 17 and not set(coco["base"]) & set(coco["novel"])
    assert {"airplane", "bus", "cat", "dog", "scissors"} <= set(coco["novel"]) and "person" in coco["base"]
    assert reg.get("ov-coco").metric == "ov_coco_bbox" and reg.get("ov-coco").root == reg.get("coco").root
    for name in ("ov-lvis-minival", "ov-lvis-val"):
        t = reg.get(name)
        assert t.open_vocab["base"] == {"frequency": ["f", "c"]} and t.open_vocab["novel"] == {"frequency": ["r"]}
        assert t.metric == "ov_lvis_fixed_ap" and t.chunk_size == 40 and t.detections_per_image == 300


def _ov_yaml(**change):
    cfg = {"name": "toy", "version": 1, "description": "d", "source": "s", "format": "coco", "root": "toy",
           "splits": {"val": {"ann": "a.json", "images": "i"}}, "eval_split": "val", "prompt_sets": {"plain": {}},
           "metric": "ov_coco_bbox", "open_vocab": {"base": ["cat"], "novel": ["dog"]}}
    cfg.update(change)
    return cfg


@pytest.mark.parametrize("change, match", [
    ({"open_vocab": None}, "needs"),
    ({"metric": "coco_bbox"}, "takes no"),
    ({"open_vocab": {"base": ["cat"], "novel": ["cat"]}}, "both base and novel"),
    ({"open_vocab": {"base": ["cat"]}}, "base, novel"),
    ({"open_vocab": {"base": {"frequency": ["f"]}, "novel": ["dog"]}}, "LVIS tasks only"),
    ({"open_vocab": {"base": ["cat"], "novel": ["dog"], "drop_empty_images": "yes"}}, "true or false"),
    ({"classes": ["cat", "dog"]}, "classes: null"),
])
def test_bad_open_vocab_blocks_name_the_key(change, match):
    cfg = _ov_yaml(**change)
    if cfg["open_vocab"] is None:
        del cfg["open_vocab"]
    with pytest.raises(UserError, match=match):
        _validate(cfg, Path("toy.yaml"))


def _coco_fixture(task, data_root, split, extra=("traffic light", "fire hydrant"), n_images=40):
    names = task.open_vocab["base"] + task.open_vocab["novel"] + list(extra)
    data = coco_dict([(i + 1, n) for i, n in enumerate(names)], n_images=n_images)
    data["images"].append({"id": 999, "file_name": "img_0999.jpg", "width": 8, "height": 6})  # no box at all
    write_coco_split(task, split, data_root, data)
    return data, {n: i + 1 for i, n in enumerate(names)}


def test_ov_coco_views_keep_65_classes_for_evaluation_and_48_for_training(ov_tasks, tmp_path):
    task = ov_tasks.get("ov-coco")
    data, ids = _coco_fixture(task, tmp_path / "data", "val")
    _coco_fixture(task, tmp_path / "data", "train")
    base, novel = {ids[n] for n in task.open_vocab["base"]}, {ids[n] for n in task.open_vocab["novel"]}
    full = task.load("val", tmp_path / "data")
    assert {c["id"] for c in full.categories} == base | novel  # the 15 others are dropped
    assert {a["category_id"] for a in full.coco["annotations"]} <= base | novel
    with_boxes = {a["image_id"] for a in data["annotations"] if a["category_id"] in base | novel}
    assert set(full.image_ids) == with_boxes and 999 not in full.image_ids  # OVR-CNN's instances_val2017_all
    assert full.coco["open_vocab"] == {"base": sorted(base), "novel": sorted(novel)}
    seen = task.load("val", tmp_path / "data", vocabulary="base")
    assert {c["id"] for c in seen.categories} == base and 999 in seen.image_ids
    assert {a["category_id"] for a in seen.coco["annotations"]} <= base and seen.coco["open_vocab"]["novel"] == []
    tr = fewshot_subset(task, "train", 1, 3, tmp_path / "data")  # what every training regime samples from
    assert {c["id"] for c in tr.dataset.categories} == base
    assert all(cid in base for i in tr.dataset.image_ids for cid in tr.dataset.category_ids(i))


def _box_iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax2, bx2) - max(a[0], b[0])), max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_ov_coco_metric_splits_novel_and_base(ov_tasks, tmp_path):
    """Novel / base AP are COCO AP of the classes alone (pycocotools on a hand-cut file as the reference);
    the headline is novel AP50; a detection of a novel class never moves base AP."""
    task = ov_tasks.get("ov-coco")
    _coco_fixture(task, tmp_path / "data", "val")
    gt = task.load("val", tmp_path / "data").coco
    preds = []
    for k, a in enumerate(gt["annotations"]):
        hit = k % 3 != 0  # two of three boxes found, one missed by a shifted box
        box = a["bbox"] if hit else [a["bbox"][0] + 2.5, a["bbox"][1], a["bbox"][2], a["bbox"][3]]
        preds.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": box, "score": 0.3 + 0.01 * (k % 50)})
    got = evaluate("ov_coco_bbox", gt, preds, backend="hotcoco")
    assert got.primary == "AP50_novel"
    for part in ("novel", "base"):
        ids = set(gt["open_vocab"][part])
        ref_gt = {k: v for k, v in gt.items() if k != "open_vocab"}
        ref_gt = dict(ref_gt, categories=[c for c in gt["categories"] if c["id"] in ids],
                      annotations=[a for a in gt["annotations"] if a["category_id"] in ids])
        ref = evaluate("coco_bbox", ref_gt, [p for p in preds if p["category_id"] in ids], backend="pycocotools")
        assert got.values[f"AP50_{part}"] == pytest.approx(ref.values["AP50"], abs=1e-6)
        assert got.values[f"AP_{part}"] == pytest.approx(ref.values["AP"], abs=1e-6)
    # brute force AP50 of one class: every box is its image's only box of the class, so AP50 = recall at
    # IoU 0.5 over the whole curve when every hit outranks every miss; here ranks mix, so check the bound
    novel = set(gt["open_vocab"]["novel"])
    hits = [p for p in preds if p["category_id"] in novel and any(
        _box_iou(p["bbox"], a["bbox"]) >= 0.5 for a in gt["annotations"]
        if a["image_id"] == p["image_id"] and a["category_id"] == p["category_id"])]
    n_gt = sum(a["category_id"] in novel for a in gt["annotations"])
    assert 0 < got.values["AP50_novel"] <= 100 * len(hits) / n_gt + 1e-6
    stray = preds + [{"image_id": gt["images"][0]["id"], "category_id": min(novel), "bbox": [0, 0, 1, 1], "score": 0.99}]
    assert evaluate("ov_coco_bbox", gt, stray).values["AP_base"] == got.values["AP_base"]
    with pytest.raises(UserError, match="open-vocabulary task"):
        evaluate("ov_coco_bbox", {k: v for k, v in gt.items() if k != "open_vocab"}, preds)


def _ov_world(tmp_path, monkeypatch):
    """The runner world with task runner-shapes-b as an OV task: 2 base classes, "red circle" novel."""
    from bench.testing.world import make_world

    tasks_dir, data_root = make_world(tmp_path)
    path = tasks_dir / "runner-shapes-b.yaml"
    text = path.read_text().replace("metric: coco_bbox", "metric: ov_coco_bbox\nopen_vocab:\n"
                                    "  base: [green square, yellow circle]\n  novel: [red circle]\n")
    path.write_text(text.replace('classes: ["green square", "yellow circle", "red circle"]', "classes: null"))
    monkeypatch.setenv("GLIP_BENCH_TASKS", str(tasks_dir))
    load_registry(tasks_dir, reload=True)
    return data_root


def _spy_training(monkeypatch) -> dict[str, list]:
    """Record what the training loop sees: every batch's captions and each target box's phrase (the caption
    text its positive-map row marks), and the captions and classes of the early-stopping scoring."""
    import bench.runs.train_stage as train_stage
    from bench.data.training import GroundingBatches

    tokenizer = _tiny_tokenizer()
    seen: dict[str, list] = {"captions": [], "box_phrases": [], "val_captions": [], "val_cats": []}
    real_batch, real_eval = GroundingBatches.batch, train_stage.evaluate_split

    def spy_batch(self, samples, device):
        (images, captions, targets), kw = real_batch(self, samples, device)
        for caption, target in zip(captions, targets):
            seen["captions"].append(caption)
            offsets = tokenizer(caption, return_offsets_mapping=True)["offset_mapping"]
            for row in target.positive_map:
                tokens = row.nonzero().flatten().tolist()
                seen["box_phrases"].append(caption[offsets[tokens[0]][0]:offsets[tokens[-1]][1]])
        return (images, captions, targets), kw

    def spy_eval(adapter, task, dataset, settings, **kw):
        seen["val_captions"] += [c.caption for c, _ in kw["chunks"]]
        seen["val_cats"] += [c["id"] for c in dataset.categories]
        return real_eval(adapter, task, dataset, settings, **kw)

    monkeypatch.setattr(GroundingBatches, "batch", spy_batch)
    monkeypatch.setattr(train_stage, "evaluate_split", spy_eval)
    return seen


def _tiny_tokenizer():
    """glip-tiny's own tokenizer (its built-in vocabulary)."""
    from glip.config import get_preset
    from glip.language import build_wordpiece_tokenizer

    return build_wordpiece_tokenizer(get_preset("glip-tiny").vocab_words)


def _ov_lvis_fixture(task, data_root):
    """The shipped ov-lvis-minival task on a generated LVIS v1 train + minival: 110 base classes (3 chunks of
    40 for early stopping, 440 caption tokens: no single caption holds them) and 40 rare ones."""
    from bench.testing.formats import chunked_lvis_categories, write_chunked_lvis

    cats = chunked_lvis_categories()
    write_chunked_lvis(task, data_root, "train", cats, n_images=12, first_image_id=1)
    gt = write_chunked_lvis(task, data_root, "minival", cats, n_images=4, first_image_id=500)
    return gt, {(i, name) for i, name, f in cats if f != "r"}, {(i, name) for i, name, f in cats if f == "r"}


def _ov_protocol(protocol, ov_tasks, tmp_path, monkeypatch):
    """(data root, task, split, base classes, novel classes) of an OV-COCO-like task (one caption holds every
    class) or the chunked OV-LVIS fixture; classes as {(id, name)}."""
    if protocol == "ov-coco-like":
        data_root = _ov_world(tmp_path, monkeypatch)
        return data_root, "runner-shapes-b", "test", {(1, "green square"), (2, "yellow circle")}, {(3, "red circle")}
    data_root = tmp_path / "data"
    _, base_classes, novel_classes = _ov_lvis_fixture(ov_tasks.get("ov-lvis-minival"), data_root)
    return data_root, "ov-lvis-minival", "minival", base_classes, novel_classes


def _phrases(caption: str) -> list[str]:
    return caption.split(". ")


@pytest.mark.parametrize("protocol", ["ov-coco-like", "ov-lvis-chunked"])
def test_fine_tuning_on_the_base_split_never_sees_a_novel_class(protocol, ov_tasks, tmp_path, monkeypatch):
    """full-ft on an OV task: every caption the training loop sees and every early-stopping prompt lacks the
    novel classes, every training box is a base box (its map row marks a base class's name), and the eval
    split is prompted with base + novel. OV-COCO-like: one fixed caption of the base classes. OV-LVIS: the
    base classes need chunked prompts, so each image gets its own sampled caption (positives + negative base
    classes within 254 tokens), recorded with its settings."""
    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext
    from bench.runs.stages import run_one

    data_root, task, split, base_classes, novel_classes = _ov_protocol(protocol, ov_tasks, tmp_path, monkeypatch)
    base, novel = {n for _, n in base_classes}, {n for _, n in novel_classes}
    seen = _spy_training(monkeypatch)
    spec = RunSpec(model="glip-tiny", task=task, regime="full-ft", shots=2 if protocol == "ov-coco-like" else 1,
                   seed=3, split=split, overrides={"max_iters": 2, "pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    record = run_one(spec, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    assert seen["captions"] and seen["val_captions"] and seen["box_phrases"]
    train_phrases = [p for c in seen["captions"] for p in _phrases(c)]
    assert set(train_phrases) <= base and set(seen["box_phrases"]) <= base
    assert not {p for c in seen["val_captions"] for p in _phrases(c)} & novel
    assert {p for c in seen["val_captions"] for p in _phrases(c)} == base  # early stopping scores every base class
    assert set(seen["val_cats"]) == {i for i, _ in base_classes}
    eval_phrases = {p for c in record["provenance"]["captions"] for p in _phrases(c)}
    assert eval_phrases == base | novel  # evaluation prompts base + novel
    if protocol == "ov-coco-like":
        assert set(seen["captions"]) == {"green square. yellow circle"} and "train_prompt" not in record["provenance"]
        return
    assert record["provenance"]["num_prompt_chunks"] == 4  # 150 classes, 40 per chunk
    assert len(seen["val_captions"]) % 3 == 0  # the 110 base classes in 3 chunks per scoring
    assert len(set(seen["captions"])) > 1  # one caption per image, not one for all
    longest = max(len(_tiny_tokenizer()(c)["input_ids"]) for c in seen["captions"])
    assert 200 < longest <= 256  # negatives fill the 254-token budget, never past it
    drawn = record["provenance"]["train_prompt"]
    assert drawn["rule"] == "sampled" and drawn["negatives"] == 85 and drawn["token_budget"] == 254
    assert drawn["vocabulary"] == len(base) and drawn["drawn"]["captions"] == len(seen["captions"])


@pytest.mark.parametrize("protocol", ["ov-coco-like", "ov-lvis-chunked"])
def test_prompt_tuning_on_an_ov_task_trains_class_anchored_offsets_of_base_classes_only(protocol, ov_tasks, tmp_path,
                                                                                       monkeypatch):
    """Prompt tuning where the training captions (base classes; OV-LVIS: sampled per image) differ from the
    evaluated prompt (base + novel, OV-LVIS in 4 chunks): no training caption names a novel class, each
    training token carries its class's (or word's) row of the anchored table, the stored table keeps every
    novel class's rows exactly zero while base rows trained, and the next run of the same model gets the
    official per-position table back."""
    from safetensors.torch import load_file

    from bench.data.training import GroundingBatches
    from bench.results import store
    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext
    from bench.runs.stages import run_one

    data_root, task, split, base_classes, novel_classes = _ov_protocol(protocol, ov_tasks, tmp_path, monkeypatch)
    novel = {n for _, n in novel_classes}
    seen = _spy_training(monkeypatch)
    rows_seen, spied = [], GroundingBatches.batch

    def keep_rows(self, samples, device):
        args, kw = spied(self, samples, device)
        rows_seen.append((args[1], kw["offset_rows"]))
        return args, kw

    monkeypatch.setattr(GroundingBatches, "batch", keep_rows)
    spec = RunSpec(model="glip-tiny", task=task, regime="prompt-tuning", shots=2 if protocol == "ov-coco-like" else 1,
                   seed=3, split=split, overrides={"max_iters": 3, "pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    ctx = RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0)
    record = run_one(spec, ctx)
    assert seen["captions"] and not {p for c in seen["captions"] for p in _phrases(c)} & novel
    layout = record["provenance"]["prompt_offsets"]
    assert layout["anchor"] == "class" and layout["classes"] == len(base_classes) + len(novel_classes)
    table = load_file(store.run_dir(ctx.results_dir, spec) / store.ADAPTER)["prompt_offset"]  # [rows, D]
    assert table.shape[0] == layout["rows"] and record["cost"]["stored_params"] == table.numel()
    tokenizer = _tiny_tokenizer()
    by_name = {n: i for i, n in base_classes | novel_classes}
    for captions, rows in rows_seen:  # each training token reads its class's rows
        for caption, r in zip(captions, rows):
            offsets = tokenizer(caption, return_offsets_mapping=True)["offset_mapping"]
            for t, (a, b) in enumerate(offsets):
                phrase = next((p for p in _phrases(caption) if caption.find(p) <= a < caption.find(p) + len(p)), None)
                if phrase is not None and b > a:  # a class name's token: one of its class's rows
                    first, count = layout["class_rows"][str(by_name[phrase])]
                    assert first <= int(r[t]) < first + count, (caption, t)

    def rows_of(classes):
        spans = [layout["class_rows"][str(i)] for i, _ in classes]  # [first row, token count] per class
        return [r for first, count in spans for r in range(first, first + count)]

    assert not table[rows_of(novel_classes)].any()  # novel classes: exactly the pre-trained text features
    assert table[rows_of(base_classes)].abs().sum(1).gt(0).any()  # base classes trained
    again = RunSpec(model="glip-tiny", task=task, regime="zero-shot", shots=0, seed=0, split=split,
                    overrides={"pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    run_one(again, ctx)
    module = ctx.models.adapter.module
    assert module.prompt_offset.shape[0] == module.config.prompt_offset_len and not module.prompt_offset.any()
    assert ctx.models.adapter.anchor is None


def test_base_only_ground_truth_has_the_base_headline():
    gt = {"images": [{"id": 1, "width": 8, "height": 8}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0}],
          "open_vocab": {"base": [1], "novel": []}}
    res = evaluate("ov_coco_bbox", gt, [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9}])
    assert res.primary == "AP50_base" and res.values["AP50_base"] == pytest.approx(100.0)
    assert math.isnan(res.values["AP50_novel"])
    assert json.dumps(res.values)  # plain floats


def test_an_ov_lvis_run_end_to_end_gives_the_reference_novel_and_base_ap(ov_tasks, tmp_path, monkeypatch):
    """A zero-shot run of the shipped ov-lvis-minival task on a fixture LVIS file: its APr / AP_novel /
    AP_base are the official lvis-api's per-class APs of the saved predictions, averaged by hand."""
    from bench.results import store
    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext
    from bench.runs.stages import run_one
    from bench.testing.formats import lvis_dict, write_image, write_json

    task = ov_tasks.get("ov-lvis-minival")
    cats = [(1, "red square", "f"), (2, "blue circle", "c"), (3, "green star", "r"), (4, "yellow ring", "r")]
    data_root = tmp_path / "data"
    gt = lvis_dict(cats, n_images=4)
    for im in gt["images"]:  # boxes as large as the image: an untrained model's boxes overlap some of them
        im["width"], im["height"] = 64, 48
        write_image(task.images_path("minival", data_root) / "/".join(im["coco_url"].split("/")[-2:]), 64, 48)
    for a in gt["annotations"]:
        a["bbox"], a["area"] = [2.0, 2.0, 60.0, 44.0], 2640.0
    write_json(task.ann_path("minival", data_root), gt)
    spec = RunSpec(model="glip-tiny", task="ov-lvis-minival", regime="zero-shot",
                   overrides={"pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    record = run_one(spec, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    preds = store.read_predictions(store.run_dir(tmp_path / "results", spec))
    assert preds and {p["category_id"] for p in preds} <= {1, 2, 3, 4}
    ref = evaluate("lvis_fixed_ap", gt, preds, backend="lvis")  # the file as written, no open_vocab key
    per_id = {c[0]: ref.per_class[c[1]] for c in cats}

    def mean(ids):
        vals = [per_id[i] for i in ids if not math.isnan(per_id[i])]
        return sum(vals) / len(vals)

    values = record["metrics"]["values"]
    assert values["AP"] > 0  # not a comparison of zeros
    assert record["metrics"]["primary"] == "APr"
    assert values["AP_novel"] == pytest.approx(mean([3, 4]), abs=1e-4)
    assert values["AP_base"] == pytest.approx(mean([1, 2]), abs=1e-4)
    assert values["APr"] == pytest.approx(ref.values["APr"], abs=1e-4) == pytest.approx(values["AP_novel"], abs=1e-4)
    assert values["AP"] == pytest.approx(ref.values["AP"], abs=1e-4)
    from bench.testing.protocols import leaderboard_cell

    assert leaderboard_cell(tmp_path / "results", "ov-lvis-minival (APr)") == f"{values['APr']:.1f}"


def test_an_ov_lvis_fine_tuning_run_through_the_cli_gives_the_reference_novel_and_base_ap(ov_tasks, tmp_path, capsys):
    """`glip-bench run --tasks ov-lvis-minival --regime full-ft` on the generated chunked LVIS fixture: the
    record states the caption sampling, and its APr / AP_novel / AP_base / AP are the official lvis-api's
    numbers of the run's saved predictions (per-class APs averaged by hand for novel and base)."""
    from bench.cli import main
    from bench.results import store
    from bench.results.records import RunSpec

    data_root, results = tmp_path / "data", tmp_path / "results"
    gt, base_classes, novel_classes = _ov_lvis_fixture(ov_tasks.get("ov-lvis-minival"), data_root)
    args = ["run", "--model", "glip-tiny", "--tasks", "ov-lvis-minival", "--regime", "full-ft", "--shots", "1",
            "--seeds", "3", "--data-root", str(data_root), "--results", str(results), "--workers", "0",
            "--set", "max_iters=2", "--set", "pre_nms_thresh=0.0", "--set", "pre_nms_top_n=5"]
    assert main(args) in (0, None)
    spec = RunSpec(model="glip-tiny", task="ov-lvis-minival", regime="full-ft", shots=1, seed=3, split="minival",
                   overrides={"max_iters": 2, "pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    folder = store.run_dir(results, spec)
    record = json.loads((folder / "record.json").read_text())
    assert record["provenance"]["train_prompt"]["rule"] == "sampled"
    assert record["provenance"]["train_prompt"]["drawn"]["captions"] == record["training"]["images_seen"] > 0
    preds = store.read_predictions(folder)
    assert preds and {p["category_id"] for p in preds} <= {c["id"] for c in gt["categories"]}
    ref = evaluate("lvis_fixed_ap", gt, preds, backend="lvis")  # the file as written, no open_vocab key
    per_id = {c["id"]: ref.per_class[c["name"]] for c in gt["categories"]}

    def mean(classes):
        vals = [per_id[i] for i, _ in classes if not math.isnan(per_id[i])]
        return sum(vals) / len(vals)

    values = record["metrics"]["values"]
    assert record["metrics"]["primary"] == "APr" and values["AP"] > 0  # not a comparison of zeros
    assert values["AP_novel"] == pytest.approx(mean(novel_classes), abs=1e-4)
    assert values["AP_base"] == pytest.approx(mean(base_classes), abs=1e-4)
    assert values["APr"] == pytest.approx(ref.values["APr"], abs=1e-4) == pytest.approx(values["AP_novel"], abs=1e-4)
    assert values["AP"] == pytest.approx(ref.values["AP"], abs=1e-4)


@pytest.mark.parametrize("regime", ["prompt-tuning", "linear-probe", "full-ft"])
def test_every_glip_regime_trains_on_sampled_captions(regime, ov_tasks, tmp_path):
    """Every GLIP training regime trains on OV-LVIS's sampled captions (one step here): its record states the
    rule and what trained, and prompt tuning (alone) its class-anchored offsets."""
    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext, resolve
    from bench.runs.stages import run_one

    _ov_lvis_fixture(ov_tasks.get("ov-lvis-minival"), tmp_path / "data")
    spec = RunSpec(model="glip-tiny", task="ov-lvis-minival", regime=regime, shots=1, seed=3, split="minival",
                   overrides={"max_iters": 1, "pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    assert resolve(spec, tmp_path / "data").train_split == "train"
    record = run_one(spec, RunContext(data_root=tmp_path / "data", results_dir=tmp_path / "results", num_workers=0))
    assert record["training"]["iters"] == 1 and record["cost"]["trainable_params"] > 0
    assert record["provenance"]["train_prompt"]["drawn"]["captions"] == record["training"]["images_seen"]
    assert ("prompt_offsets" in record["provenance"]) == (regime == "prompt-tuning")


def test_a_chunked_task_without_a_train_prompt_is_refused_for_training(tmp_path, monkeypatch):
    """lvis-minival-like chunked task with a train split but no train_prompt: training says what to declare."""
    from bench.results.records import RunSpec
    from bench.runs.spec import resolve
    from bench.testing.world import make_world

    tasks_dir, data_root = make_world(tmp_path)
    path = tasks_dir / "runner-shapes-b.yaml"
    path.write_text(path.read_text().replace("chunk_size: null", "chunk_size: 1"))
    monkeypatch.setenv("GLIP_BENCH_TASKS", str(tasks_dir))
    load_registry(reload=True)
    spec = RunSpec(model="glip-tiny", task="runner-shapes-b", regime="full-ft", shots=1, seed=3, split="test")
    with pytest.raises(UserError, match="declares no train_prompt"):
        resolve(spec, data_root)
    path.write_text(path.read_text() + "train_prompt: {rule: sampled, negatives: 2}\n")
    load_registry(reload=True)
    assert resolve(spec, data_root).train_split == "train"


@pytest.mark.parametrize("block, match", [({"rule": "fixed"}, "rule: sampled"), ({"rule": "sampled", "negatives": -1},
                                          "negatives"), ({"rule": "sampled", "all_negatives_prob": 2}, "in \\[0, 1\\]"),
                                          ({"rule": "sampled", "shuffle": False}, "rule: sampled")])
def test_bad_train_prompt_blocks_name_the_key(block, match):
    with pytest.raises(UserError, match=match):
        _validate(_ov_yaml(train_prompt=block), Path("toy.yaml"))


def test_grounding_dino_fine_tunes_on_ov_lvis_and_a_closed_set_detector_is_refused_by_name(ov_tasks, tmp_path):
    """Grounding DINO full-ft resolves on OV-LVIS's sampled captions (HFAdapter.sampled_training_set with the
    corrected loss; the run itself: tests/bench/models/test_hf_sampled_captions.py); a closed-set detector,
    which reads no caption, is refused naming the family and the reason, before any weights are read."""
    from bench.results.records import RunSpec
    from bench.runs.spec import resolve
    from bench.testing.hf import save_tiny

    _ov_lvis_fixture(ov_tasks.get("ov-lvis-minival"), tmp_path / "data")
    model = f"hf:{save_tiny('grounding-dino', tmp_path / 'gdino')}"
    spec = RunSpec(model=model, task="ov-lvis-minival", regime="full-ft", shots=1, seed=3, split="minival")
    assert resolve(spec, tmp_path / "data").train_split == "train"
    closed = RunSpec(model=f"hf:{save_tiny('rt_detr_v2', tmp_path / 'rtdetr')}", task="ov-lvis-minival",
                     regime="full-ft", shots=1, seed=3, split="minival")
    with pytest.raises(UserError, match="closed-set cannot train on task ov-lvis-minival.*reads no captions"):
        resolve(closed, tmp_path / "data")
