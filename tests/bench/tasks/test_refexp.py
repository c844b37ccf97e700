"""Referring expressions: MDETR refexp files (RefCOCO/+/g, gRefCOCO) generated here in their real layout,
the reader's checks, Acc@0.5 and gRefCOCO's rules against brute-force references, an end-to-end GLIP run,
and the hf families that can ground a phrase (others refused with the reason)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.metrics import evaluate
from bench.tasks.registry import load_registry
from bench.testing.formats import write_image, write_json
from bench.testing.protocols import leaderboard_cell
from bench.util.errors import UserError

W, H = 64, 48


def refexp_json(expressions: list[tuple[str, str, list[list[float]] | None]], dataset: str = "refcoco") -> dict:
    """An MDETR final_refcoco_*.json: (file name, expression, referred xywh boxes; None = gRefCOCO no-target)."""
    images, anns = [], []
    for i, (fname, text, boxes) in enumerate(expressions, start=1):
        images.append({"file_name": fname, "height": H, "width": W, "id": i, "original_id": 100 + i,
                       "caption": text, "dataset_name": dataset, "tokens_negative": [[0, len(text)]],
                       "sentence_id": 0, "original_img_id": 7, "tokens_positive_eval": [[[0, len(text)]]]})
        for box in boxes if boxes is not None else [[0.0, 0.0, 0.0, 0.0]]:
            anns.append({"area": box[2] * box[3], "iscrowd": 0, "image_id": i, "id": len(anns) + 1,
                         "category_id": -1 if boxes is None else 1, "bbox": box, "original_id": 500 + len(anns),
                         "tokens_positive": [[0, len(text)]]})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}


@pytest.fixture
def reg():
    """The shipped tasks (the runs below look their task up by name there)."""
    return load_registry(reload=True)


def _write(task, data_root, data) -> None:
    write_json(task.ann_path(task.eval_split, data_root), data)
    for im in data["images"]:
        write_image(task.images_path(task.eval_split, data_root) / im["file_name"], W, H)


EXPRESSIONS = [("COCO_train2014_000000000001.jpg", "the man on the left", [[2.0, 2.0, 56.0, 40.0]]),
               ("COCO_train2014_000000000001.jpg", "red umbrella", [[4.0, 3.0, 50.0, 42.0]]),
               ("COCO_train2014_000000000002.jpg", "dog", [[0.0, 0.0, 60.0, 44.0]]),
               ("COCO_train2014_000000000002.jpg", "small cup right", [[40.0, 30.0, 10.0, 8.0]])]


def test_shipped_refexp_tasks_follow_glips_layout(tmp_path):
    reg = load_registry(reload=True)
    names = {t.name for t in reg.list("refexp")}
    assert names == {"refcoco-val", "refcoco-testa", "refcoco-testb", "refcocoplus-val", "refcocoplus-testa",
                     "refcocoplus-testb", "refcocog-val", "refcocog-test"}
    t = reg.get("refcocoplus-testa")
    assert t.ann_path("testa", tmp_path) == tmp_path / "mdetr_annotations/final_refcoco+_testA.json"
    assert t.images_path("testa", tmp_path) == tmp_path / "coco/train2014" and t.metric == "rec_accuracy"
    assert {t.metric for t in reg.list("grefcoco")} == {"grec_accuracy"} and len(reg.list("grefcoco")) == 3


def test_reader_gives_one_sample_per_expression(reg, tmp_path):
    task = reg.get("refcoco-val")
    _write(task, tmp_path, refexp_json(EXPRESSIONS))
    ds = task.load("val", tmp_path)
    assert [s.caption for s in ds.samples] == [e[1] for e in EXPRESSIONS] and len(ds.images) == 2
    first = ds.samples[0].phrases
    assert len(first) == 1 and first[0].spans == [(0, len("the man on the left"))]
    assert first[0].boxes_xyxy == [[2.0, 2.0, 58.0, 42.0]]  # xywh -> x + w, no +1 (MDETR's conversion)
    assert ds.entities[3]["phrases"][0]["boxes"] == [[40.0, 30.0, 50.0, 38.0]]


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["images"][0].pop("caption"), "caption"),
    (lambda d: d["annotations"][0].update(image_id=99), "not an entry id"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), "negative width"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0], id=99)), "refers to 2 boxes"),
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate entry ids"),
])
def test_bad_refexp_files_name_the_entry(reg, tmp_path, edit, match):
    task = reg.get("refcoco-val")
    data = refexp_json(EXPRESSIONS)
    edit(data)
    _write(task, tmp_path, data)
    with pytest.raises(UserError, match=match):
        task.load("val", tmp_path)


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def brute_rec(entries, preds, k=1):
    """Share (%) of expressions with a box among the top k (by score) at IoU >= 0.5 with the referred box."""
    by_id = {p["image_id"]: p for p in preds}
    hits = 0
    for e in entries:
        gt = e["phrases"][0]["boxes"][0]
        p = by_id[e["image_id"]]
        order = sorted(range(len(p["boxes"][0])), key=lambda i: -p["scores"][0][i])
        hits += any(_iou(p["boxes"][0][i], gt) >= 0.5 for i in order[:k])
    return 100.0 * hits / len(entries)


def test_rec_accuracy_equals_brute_force_on_random_predictions():
    rng = np.random.default_rng(0)
    entries, preds = [], []
    for i in range(60):
        x, y = rng.uniform(0, 30, 2)
        gt = [x, y, x + rng.uniform(5, 30), y + rng.uniform(5, 30)]
        entries.append({"image_id": i, "phrases": [{"phrase_id": "0", "boxes": [gt], "types": []}]})
        boxes = [[b[0], b[1], b[0] + rng.uniform(3, 30), b[1] + rng.uniform(3, 30)] for b in rng.uniform(0, 30, (12, 2))]
        boxes[0] = [gt[0] + rng.uniform(-4, 4), gt[1] + rng.uniform(-4, 4), gt[2], gt[3]]  # a near hit somewhere
        scores = rng.random(12)
        order = np.argsort(-scores, kind="stable")
        preds.append({"image_id": i, "boxes": [[boxes[j] for j in order]], "scores": [[float(scores[j]) for j in order]]})
    res = evaluate("rec_accuracy", entries, preds)
    assert res.primary == "Acc@0.5"
    assert res.values["Acc@0.5"] == pytest.approx(brute_rec(entries, preds, 1))
    assert res.values["P@5"] == pytest.approx(brute_rec(entries, preds, 5))
    assert res.values["P@10"] == pytest.approx(brute_rec(entries, preds, 10))
    assert 0 < res.values["Acc@0.5"] < res.values["P@10"] < 100
    assert res.values["Acc@0.5_giou"] <= res.values["Acc@0.5"]  # GIoU <= IoU


def test_giou_rule_is_stricter_than_iou():
    """A box shifted diagonally: IoU 0.5065 (a hit), GIoU 0.4582 (its hull is larger than the union: a miss)."""
    entries = [{"image_id": 1, "phrases": [{"phrase_id": "0", "boxes": [[0, 0, 10, 10]], "types": []}]}]
    same = [{"image_id": 1, "boxes": [[[0, 0, 10, 10]]], "scores": [[0.9]]}]
    assert evaluate("rec_accuracy", entries, same).values["Acc@0.5_giou"] == 100.0
    box = [1.8, 1.8, 11.8, 11.8]
    inter, union, hull = 8.2 * 8.2, 200 - 8.2 * 8.2, 11.8 * 11.8
    assert _iou(box, [0, 0, 10, 10]) == pytest.approx(inter / union) and inter / union >= 0.5
    assert inter / union - (hull - union) / hull < 0.5
    res = evaluate("rec_accuracy", entries, [{"image_id": 1, "boxes": [[box]], "scores": [[0.9]]}]).values
    assert res["Acc@0.5"] == 100.0 and res["Acc@0.5_giou"] == 0.0


def brute_grec(entries, preds, score_thresh=0.7):
    """gRefCOCO by exhaustion: the best one-to-one matching (every assignment) decides F1 = 1."""
    from itertools import permutations

    by_id = {p["image_id"]: p for p in preds}
    right = nt = nt_right = 0
    for e in entries:
        gt = e["phrases"][0]["boxes"]
        p = by_id[e["image_id"]]
        kept = [b for b, s in zip(p["boxes"][0], p["scores"][0]) if s >= score_thresh]
        if not gt:
            nt += 1
            nt_right += not kept
            right += not kept
            continue
        if len(kept) != len(gt):
            continue
        right += any(all(_iou(kept[i], g) >= 0.5 for i, g in zip(perm, gt)) for perm in permutations(range(len(kept))))
    return 100.0 * right / len(entries), 100.0 * nt_right / nt


def test_grec_accuracy_follows_grefcoco_rules():
    """No-target right iff no box kept; multi-target right iff every target matched and no extra box."""
    g = lambda i, boxes: {"image_id": i, "phrases": [{"phrase_id": "0", "boxes": boxes, "types": []}]}  # noqa: E731
    a, b = [0, 0, 10, 10], [20, 20, 30, 30]
    entries = [g(1, []), g(2, []), g(3, [a, b]), g(4, [a, b]), g(5, [a]), g(6, [a, b])]
    preds = [
        {"image_id": 1, "boxes": [[a]], "scores": [[0.5]]},  # below 0.7: nothing kept -> right
        {"image_id": 2, "boxes": [[a]], "scores": [[0.9]]},  # a box on a no-target expression -> wrong
        {"image_id": 3, "boxes": [[b, a]], "scores": [[0.95, 0.8]]},  # both found -> right
        {"image_id": 4, "boxes": [[a, b, [40, 40, 45, 45]]], "scores": [[0.9, 0.9, 0.8]]},  # an extra box -> wrong
        {"image_id": 5, "boxes": [[[1, 1, 10, 10]]], "scores": [[0.99]]},  # IoU 0.81 -> right
        {"image_id": 6, "boxes": [[a, [0, 0, 9, 9]]], "scores": [[0.9, 0.9]]},  # both on a: one match -> wrong
    ]
    res = evaluate("grec_accuracy", entries, preds)
    assert res.primary == "Pr@F1=1"
    assert res.values["Pr@F1=1"] == pytest.approx(100 * 3 / 6) == pytest.approx(brute_grec(entries, preds)[0])
    assert res.values["N-acc"] == pytest.approx(50.0) == pytest.approx(brute_grec(entries, preds)[1])
    assert res.values["T-acc"] == pytest.approx(100.0)
    with pytest.raises(UserError, match="grec_accuracy"):
        evaluate("rec_accuracy", entries, preds)


def test_grefcoco_reader_keeps_no_target_and_multi_target(reg, tmp_path):
    task = reg.get("grefcoco-val")
    data = refexp_json([("a.jpg", "nobody here", None), ("a.jpg", "the two dogs", [[1, 1, 5, 5], [10, 10, 5, 5]])],
                       dataset="grefcoco")
    _write(task, tmp_path, data)
    ds = task.load("val", tmp_path)
    assert [len(s.phrases[0].boxes_xyxy) for s in ds.samples] == [0, 2]


def test_a_glip_rec_run_end_to_end_equals_the_brute_force_accuracy(reg, tmp_path):
    from bench.results import store
    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext
    from bench.runs.stages import run_one

    task = reg.get("refcoco-val")
    _write(task, tmp_path / "data", refexp_json(EXPRESSIONS))
    spec = RunSpec(model="glip-tiny", task="refcoco-val", regime="zero-shot",
                   overrides={"pre_nms_thresh": 0.0, "pre_nms_top_n": 20})
    record = run_one(spec, RunContext(data_root=tmp_path / "data", results_dir=tmp_path / "results", num_workers=0))
    preds = store.read_predictions(store.run_dir(tmp_path / "results", spec))
    entries = task.load("val", tmp_path / "data").entities
    assert record["metrics"]["primary"] == "Acc@0.5" and len(preds) == len(EXPRESSIONS)
    values = record["metrics"]["values"]
    assert values["Acc@0.5"] == pytest.approx(brute_rec(entries, preds, 1))
    assert values["P@10"] == pytest.approx(brute_rec(entries, preds, 10))
    assert values["P@10"] > 0  # not a comparison of zeros
    assert json.dumps(record["task"]["name"]) == '"refcoco-val"'
    assert leaderboard_cell(tmp_path / "results", "refcoco-val (Acc@0.5)") == f"{values['Acc@0.5']:.1f}"



def test_protocol_reference_rows_land_in_the_headline_columns():
    """results/reference/protocol-numbers.csv: REC, gRefCOCO, OV-LVIS and ODinW-35 rows become cells of our
    task columns; non-headline metrics (gRefCOCO N-acc) stay in the CSV."""
    import pandas as pd

    from bench.reports.reference import load_reference, reference_cells
    from bench.testing.protocols import REFERENCE

    raw = pd.read_csv(REFERENCE, dtype=str, keep_default_na=False)
    cells = reference_cells(load_reference([REFERENCE]))
    assert len(cells) == (raw["metric"] != "N-acc").sum()
    assert {"refcoco-val", "refcocoplus-testb", "refcocog-test", "grefcoco-testa", "ov-lvis-minival",
            "odinw35 mean"} <= set(cells["column"])
    row = raw[(raw.model == "GDINO-T") & (raw.task == "refcoco+") & (raw.split == "testB") & (raw.regime == "zero-shot")]
    cell = cells[(cells.model == "GDINO-T") & (cells.column == "refcocoplus-testb") & (cells.regime == "zero-shot")]
    assert float(row["value"].iloc[0]) == cell["value"].iloc[0]


def test_an_external_rec_predictions_file_scores_as_the_brute_force(reg, tmp_path):
    """`glip-bench score --task refcoco-val --predictions FILE`: grounding entries, one per expression."""
    from bench.cli import main
    from bench.results import store
    from bench.runs import external

    task = reg.get("refcoco-val")
    _write(task, tmp_path / "data", refexp_json(EXPRESSIONS))
    entries = task.load("val", tmp_path / "data").entities
    preds = []
    for e in entries:  # the referred box first for even ids, a shifted one first for odd ids
        x1, y1, x2, y2 = e["phrases"][0]["boxes"][0]
        shifted = [x2, y2, x2 + (x2 - x1), y2 + (y2 - y1)]
        boxes = [[x1, y1, x2, y2], shifted] if e["image_id"] % 2 == 0 else [shifted, [x1, y1, x2, y2]]
        preds.append({"image_id": e["image_id"], "boxes": [boxes], "scores": [[0.9, 0.8]]})
    write_json(tmp_path / "preds.json", preds)
    assert main(["score", "--task", "refcoco-val", "--predictions", str(tmp_path / "preds.json"),
                 "--data-root", str(tmp_path / "data"), "--results", str(tmp_path / "out")]) == 0
    (folder,) = (tmp_path / "out" / external.FOLDER).iterdir()
    values = store.load_record(folder / store.RECORD)["metrics"]["values"]
    assert values["Acc@0.5"] == pytest.approx(brute_rec(entries, preds, 1)) == pytest.approx(50.0)
    assert values["P@5"] == pytest.approx(brute_rec(entries, preds, 5)) == pytest.approx(100.0)
