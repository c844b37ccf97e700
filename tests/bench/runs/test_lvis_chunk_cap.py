"""Chunked LVIS runs follow the official Fixed-AP protocol: every chunk's detections reach the evaluator."""

from __future__ import annotations

import json

import pytest
import torch

from bench.metrics import evaluate
from bench.models.glip import to_coco_detections
from bench.testing.world import make_world


def _lvis_gt() -> dict:
    cats = [{"id": 1, "name": "red square", "frequency": "f"}, {"id": 2, "name": "blue circle", "frequency": "c"}]
    images = [{"id": 1, "file_name": "1.png", "width": 100, "height": 100,
               "neg_category_ids": [], "not_exhaustive_category_ids": []}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [60, 60, 20, 20], "area": 400}]
    return {"images": images, "annotations": anns, "categories": cats}


def _xyxy(x, y, w, h):
    return [x, y, x + w - 1, y + h - 1]  # to_coco_detections adds the legacy +1 back


def test_uncapped_merge_changes_fixed_ap_where_the_per_image_cap_drops_a_true_positive():
    """Chunk 1 (category 1) has two confident boxes, chunk 2's true positive scores lower: a per-image cap
    of 2 after the merge drops it, the official protocol keeps it."""
    chunk1 = (torch.tensor([_xyxy(10, 10, 20, 20), _xyxy(40, 0, 10, 10)], dtype=torch.float),
              torch.tensor([0.9, 0.8]), torch.tensor([1, 1]))
    chunk2 = (torch.tensor([_xyxy(60, 60, 20, 20), _xyxy(0, 70, 10, 10)], dtype=torch.float),
              torch.tensor([0.5, 0.4]), torch.tensor([2, 2]))
    capped = to_coco_detections(1, [chunk1, chunk2], 2)
    merged = to_coco_detections(1, [chunk1, chunk2], None)
    assert len(capped) == 2 and len(merged) == 4
    gt = _lvis_gt()
    ap_capped = evaluate("lvis_fixed_ap", gt, capped, backend="lvis").values
    ap_merged = evaluate("lvis_fixed_ap", gt, merged, backend="lvis").values
    assert ap_merged["APc"] == pytest.approx(100.0) and ap_capped["APc"] == pytest.approx(0.0)
    assert ap_merged["AP"] > ap_capped["AP"]


def _lvis_world(tmp_path, monkeypatch):
    tasks_dir, data_root = make_world(tmp_path)
    name = "runner-shapes-b"
    for split in ("train", "val", "test"):
        ann = data_root / "runner" / name / split / "ann.json"
        data = json.loads(ann.read_text())
        for c in data["categories"]:
            c["frequency"] = "f"
        for im in data["images"]:
            im["neg_category_ids"], im["not_exhaustive_category_ids"] = [], []
        ann.write_text(json.dumps(data))
    path = tasks_dir / f"{name}.yaml"
    path.write_text(path.read_text().replace("format: coco", "format: lvis").replace(
        "chunk_size: null", "chunk_size: 1").replace("detections_per_image: 100", "detections_per_image: 2").replace(
        "metric: coco_bbox", "metric: lvis_fixed_ap"))
    monkeypatch.setenv("GLIP_BENCH_TASKS", str(tasks_dir))
    from bench.tasks.registry import load_registry

    load_registry(tasks_dir, reload=True)
    return data_root


def test_a_chunked_fixed_ap_run_keeps_every_chunks_detections_and_records_the_caps(tmp_path, monkeypatch):
    from bench.results import store
    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext
    from bench.runs.stages import run_one

    data_root = _lvis_world(tmp_path, monkeypatch)
    spec = RunSpec(model="glip-tiny", task="runner-shapes-b", regime="zero-shot",
                   overrides={"pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    record = run_one(spec, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    assert record["provenance"]["detection_caps"] == {"per_chunk": 2, "per_image_after_merge": None}
    preds = store.read_predictions(store.run_dir(tmp_path / "results", spec))
    per_image = {}
    for p in preds:
        per_image[p["image_id"]] = per_image.get(p["image_id"], 0) + 1
    assert max(per_image.values()) == 3 * 2  # 3 chunks of 1 class, 2 detections each, no cap after the merge
