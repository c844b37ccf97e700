"""One evaluation path: evaluate_split gives a run's own numbers, and self-training's AP is the hand-scored one."""

from __future__ import annotations

import json

import torch

from bench.models.cache import ModelCache
from bench.results.records import RunSpec
from bench.runs.hparams import InferenceHParams
from bench.runs.predict import detect_settings, evaluate_split
from bench.runs.spec import RunContext
from bench.runs.stages import run_one
from bench.tasks.registry import get_task
from bench.testing.world import make_world

LOOSE = {"pre_nms_thresh": 0.0, "pre_nms_top_n": 5}  # an untrained model: let candidates through, but few


def test_evaluate_split_gives_the_numbers_of_the_run(tmp_path, monkeypatch):
    """A study scoring a split through evaluate_split gets the record's metrics, value for value."""
    _, data_root = make_world(tmp_path, monkeypatch)
    spec = RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot", overrides=LOOSE)
    record = run_one(spec, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    task = get_task(spec.task)
    dataset = task.load(record["task"]["split"], data_root)
    adapter = ModelCache("cpu").get("glip-tiny", None, LOOSE)
    settings = detect_settings(task, InferenceHParams(), "cpu", num_workers=0)
    ev = evaluate_split(adapter, task, dataset, settings, backend="hotcoco")
    assert ev.num_predictions > 0 and ev.seconds > 0
    assert json.dumps(ev.result.values) == json.dumps(record["metrics"]["values"])  # NaN-safe equality
    saved = evaluate_split(adapter, task, dataset, settings, backend="hotcoco", save_to=tmp_path / "again")
    assert json.dumps(saved.result.values) == json.dumps(ev.result.values)


def test_zero_shot_ap_equals_scoring_model_detect_by_hand(tmp_path):
    """Self-training's AP through evaluate_split is what scoring model.detect's boxes (xywh, +1) gives."""
    from PIL import Image

    from bench.metrics import evaluate
    from bench.studies.selftrain.experiment import draw_eval, zero_shot_ap
    from glip.config import get_preset
    from glip.model import GLIP
    from glip.prompts import positive_map

    concept = "square"
    coco, paths = draw_eval(concept, 4, 7, tmp_path / "eval")
    torch.manual_seed(0)
    model = GLIP(get_preset("glip-tiny", pre_nms_thresh=0.0, pre_nms_top_n=5)).eval()
    pm = positive_map(model.tokenizer, concept, [[(0, len(concept))]], max_len=model.config.max_query_len)
    preds = []
    with torch.no_grad():
        for b in range(0, len(paths), 2):
            images = model.preprocess([Image.open(p).convert("RGB") for p in paths[b: b + 2]])
            for k, det in enumerate(model.detect(images, [concept] * len(images), [pm] * len(images))):
                for (x1, y1, x2, y2), s in zip(det.boxes_xyxy.tolist(), det.scores.tolist()):
                    preds.append({"image_id": b + k + 1, "category_id": 1, "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                                  "score": s})
    by_hand = evaluate("coco_bbox", coco, preds).values["AP"]
    assert len(preds) > 0
    assert abs(zero_shot_ap(model, concept, coco, paths, 2, "cpu") - by_hand) < 1e-6
