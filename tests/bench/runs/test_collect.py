"""Predictions streamed image by image (bench.runs.collect): the file a list gave, Fixed AP's per-class top-k
equal to keeping everything, and nothing that looks finished after an interruption."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import torch

from bench.metrics import evaluate
from bench.metrics.detections import as_dicts, top_per_class
from bench.models.base import detect_dicts, merge_chunks
from bench.models.cache import ModelCache
from bench.results import store
from bench.runs.collect import DetectionCollector
from bench.runs.hparams import InferenceHParams
from bench.runs.predict import EvalTask, detect_settings, evaluate_split
from bench.tasks.registry import get_task
from bench.testing.metrics import make_lvis_v1_like
from bench.testing.world import make_world

LOOSE = {"pre_nms_thresh": 0.0, "pre_nms_top_n": 5}  # an untrained model: let candidates through, but few


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ the file, byte for byte
def test_the_writer_gives_the_bytes_of_write_predictions(tmp_path):
    _, rows = make_lvis_v1_like(12, n_categories=20, per_image=7, chunks=2, seed=1)
    entries = as_dicts(rows)
    store.write_predictions(tmp_path / "whole", entries)
    writer = store.PredictionsWriter(tmp_path / "pieces" / store.PREDICTIONS)
    bounds = [0, 1, 1, 40, 41, 100, len(entries)]  # uneven pieces, an empty one among them
    for a, b in zip(bounds, bounds[1:]):
        writer.write(entries[a:b])
    writer.commit()
    assert (tmp_path / "pieces" / store.PREDICTIONS).read_bytes() == (tmp_path / "whole" / store.PREDICTIONS).read_bytes()
    assert _leftovers(tmp_path / "pieces") == [store.PREDICTIONS]
    empty = store.PredictionsWriter(tmp_path / "empty" / store.PREDICTIONS)
    empty.commit()
    store.write_predictions(tmp_path / "empty-whole", [])
    assert store.read_predictions(tmp_path / "empty") == []
    assert (tmp_path / "empty" / store.PREDICTIONS).read_bytes() == (tmp_path / "empty-whole" / store.PREDICTIONS).read_bytes()


def test_images_in_any_order_are_written_in_the_splits_order(tmp_path):
    _, rows = make_lvis_v1_like(10, n_categories=20, per_image=3, chunks=1, seed=2)
    ids = list(range(1, 11))
    with DetectionCollector(tmp_path, ids) as collector:
        for i in (3, 1, 2, 10, 9, 4, 5, 6, 8, 7):  # early ones wait in the spool
            collector.add(i, rows[rows[:, 0] == i])
        assert any(p.name.startswith(".predictions.spool.") for p in tmp_path.iterdir())
        assert collector.finish() == len(rows)
    assert store.read_predictions(tmp_path) == as_dicts(rows)
    assert _leftovers(tmp_path) == [store.PREDICTIONS]


def test_a_glip_run_streams_the_file_the_old_list_gave(tmp_path, monkeypatch):
    """The old path (dicts from the engine's tensors with tolist(), one list, write_predictions) and the
    streamed file are the same bytes; batch 2 groups images by size, so they come out of order."""
    _, data_root = make_world(tmp_path, monkeypatch)
    task = get_task("runner-shapes-a")
    dataset = task.load(task.eval_split, data_root)
    adapter = ModelCache("cpu").get("glip-tiny", None, LOOSE)
    settings = detect_settings(task, InferenceHParams(infer_batch_size=2), "cpu", num_workers=0)
    chunks = adapter.prompt_chunks(task, dataset, "plain")
    evaluate_split(adapter, task, dataset, settings, backend="hotcoco", chunks=chunks, save_to=tmp_path / "run")

    old = _old_predict_detection(adapter.module, dataset, [ch for ch, _ in chunks], settings.per_chunk_cap, 2)
    assert len(old) > 10
    store.write_predictions(tmp_path / "old", old)
    assert (tmp_path / "run" / store.PREDICTIONS).read_bytes() == (tmp_path / "old" / store.PREDICTIONS).read_bytes()


def _old_predict_detection(model, dataset, chunks, cap, batch_size):
    """bench.models.glip.predict_detection before streaming (its loop, dicts from tolist(), one list)."""
    from bench.models import glip as engine
    from bench.models.batching import image_batches, plan_batches
    from glip.ops.boxes import xyxy_to_xywh

    ids = list(dataset.image_ids)
    cat_ids = torch.tensor([int(c["id"]) for c in dataset.categories], dtype=torch.long)
    lookups = [cat_ids[torch.as_tensor(list(ch.phrase_indices), dtype=torch.long)] for ch in chunks]
    cfg = model.config
    texts = engine.encode_prompts(model, [ch.caption for ch in chunks])
    sizes = [(dataset.image(i).width, dataset.image(i).height) for i in ids]
    plan = plan_batches(sizes, batch_size, cfg.min_size, cfg.max_size, cfg.size_divisibility, True)
    by_image = {}
    for batch_ids, images in image_batches(dataset.load_image, ids, plan, cfg, 0, False):
        per_chunk = engine.detect_chunks(model, images, texts, [ch.positive_map for ch in chunks], cap=cap)
        for j, image_id in enumerate(batch_ids):
            parts = [(d[j].boxes_xyxy, d[j].scores, lookup[d[j].labels]) for d, lookup in zip(per_chunk, lookups)]
            boxes, scores, labels = merge_chunks(parts, cap)
            by_image[image_id] = [{"image_id": int(image_id), "category_id": int(c), "bbox": b, "score": s}
                                  for b, s, c in zip(xyxy_to_xywh(boxes).tolist(), scores.tolist(), labels.tolist())]
    return [p for i in ids for p in by_image[i]]


def test_hf_rows_give_the_dicts_of_tolist():
    """hf / SAM 3 / generative adapters: rows -> dicts equal the old coco_results' tolist() dicts."""
    from bench.models.hf.outputs import coco_results

    g = torch.Generator().manual_seed(0)
    xyxy = torch.rand(50, 4, generator=g) * 500
    xyxy[:, 2:] += xyxy[:, :2]
    scores, cats = torch.rand(50, generator=g), torch.randint(1, 90, (50,), generator=g)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    old = [{"image_id": 7, "category_id": int(c), "bbox": [x, y, w, h], "score": s}
           for (x, y), (w, h), s, c in zip(xyxy[:, :2].tolist(), wh.tolist(), scores.tolist(), cats.tolist())]
    new = coco_results(7, xyxy, scores, cats)
    assert orjson.dumps(new) == orjson.dumps(old)


@pytest.mark.slow
def test_an_hf_run_streams_the_file_of_its_detect_list(tmp_path):
    from bench.testing.hf import TASK, OneThread, make_data, run_cli, save_tiny

    data_root = make_data(tmp_path / "data")
    model_dir = save_tiny("owlv2", tmp_path / "owlv2")
    with OneThread():
        rc, [record] = run_cli(model_dir, data_root, tmp_path / "results")
        assert rc == 0
        task = get_task(TASK)
        dataset = task.load(record["task"]["split"], data_root)
        adapter = ModelCache("cpu").get(f"hf:{model_dir}", None, {})
        settings = detect_settings(task, InferenceHParams(), "cpu", num_workers=0)
        listed = detect_dicts(adapter, dataset, adapter.prompt_chunks(task, dataset, "plain"), settings)
    assert len(listed) > 0
    store.write_predictions(tmp_path / "list", listed)
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    assert (run_dir / store.PREDICTIONS).read_bytes() == (tmp_path / "list" / store.PREDICTIONS).read_bytes()


# ------------------------------------------------------------------------------ Fixed AP's per-class top-k
def _tied_lvis(n_images=60, n_categories=20):
    gt, rows = make_lvis_v1_like(n_images, n_categories=n_categories, per_image=25, chunks=2, seed=3)
    rows[:, 5] = np.round(rows[:, 5], 2)  # many equal scores, across images and within them
    order = np.lexsort((-rows[:, 5], rows[:, 0]))  # file order: by image, score descending (stable)
    return gt, rows[order]


def _kth_place_tied(rows: np.ndarray, k: int) -> bool:
    for c in np.unique(rows[:, 6]):
        s = np.sort(rows[rows[:, 6] == c, 5])[::-1]
        if len(s) > k and s[k - 1] == s[k]:
            return True
    return False


@pytest.mark.parametrize("backend", ["hotcoco", "lvis"])
def test_top_k_per_class_as_it_goes_scores_as_keeping_everything(tmp_path, backend):
    k = 25
    gt, rows = _tied_lvis()
    assert np.bincount(rows[:, 6].astype(int)).max() > 3 * k and _kth_place_tied(rows, k)  # the cap cuts, at a tie
    ids = [im["id"] for im in gt["images"]]
    arrival = np.random.default_rng(0).permutation(ids)  # out of order, as size-grouped batches come
    with DetectionCollector(tmp_path, ids, per_class_cap=k, prune_at=50) as collector:  # cuts many times
        for i in arrival:
            collector.add(int(i), rows[rows[:, 0] == i])
        written = collector.finish()
    saved = store.read_predictions(tmp_path)
    assert written == len(saved) < len(rows)
    assert saved == as_dicts(top_per_class(rows, k))  # the metric's own selection, in file order
    whole = evaluate("lvis_fixed_ap", gt, as_dicts(rows), backend=backend, max_dets_per_class=k)
    kept = evaluate("lvis_fixed_ap", gt, saved, backend=backend, max_dets_per_class=k)
    assert json.dumps(kept.values) == json.dumps(whole.values)  # identical (NaN-safe)
    assert json.dumps(kept.per_class) == json.dumps(whole.per_class)


def test_the_run_keeps_the_protocols_per_class_cap_only_for_fixed_ap():
    from bench.metrics.lvis import FIXED_AP_PER_CLASS
    from bench.runs.predict import per_class_cap

    assert per_class_cap(EvalTask("lvis_fixed_ap", "coco", 300)) == FIXED_AP_PER_CLASS == 10_000
    assert per_class_cap(EvalTask("ov_lvis_fixed_ap", "coco", 300)) == 10_000
    assert per_class_cap(EvalTask("lvis_bbox", "coco", 300)) is None
    assert per_class_cap(EvalTask("coco_bbox", "coco", 100)) is None


def test_a_nan_score_is_refused_by_name_under_fixed_ap(tmp_path):
    row = np.array([[1, 0, 0, 5, 5, np.nan, 1]], dtype=np.float64)
    with pytest.raises(ValueError, match="image 1: a detection has the score nan"):
        with DetectionCollector(tmp_path, [1], per_class_cap=3) as collector:
            collector.add(1, row)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ interrupted
class _Interrupted:
    """An adapter that hands back `before` images (out of order) and then is interrupted."""

    def __init__(self, rows: np.ndarray, before: list[int]) -> None:
        self.rows, self.before = rows, before

    def detect_images(self, dataset, chunks, settings, *, image_ids=None, timer=None):
        for i in self.before:
            yield i, self.rows[self.rows[:, 0] == i]
        raise KeyboardInterrupt


@pytest.mark.parametrize("metric", ["coco_bbox", "lvis_fixed_ap"])
def test_an_interrupted_prediction_leaves_no_predictions_file(tmp_path, metric):
    gt, rows = make_lvis_v1_like(6, n_categories=20, per_image=5, chunks=1, seed=4)
    dataset = SimpleNamespace(image_ids=[im["id"] for im in gt["images"]], coco=gt)
    task = EvalTask(metric=metric, format="coco", detections_per_image=5)
    settings = detect_settings(task, InferenceHParams(), "cpu")
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(KeyboardInterrupt):  # image 1 is written, 3 and 2 wait in the spool (coco_bbox)
        evaluate_split(_Interrupted(rows, [1, 3, 2]), task, dataset, settings, backend="hotcoco", chunks=[],
                       save_to=folder)
    assert _leftovers(folder) == []
    with pytest.raises(Exception, match="no predictions"):
        store.read_predictions(folder)


def test_a_split_with_an_image_left_out_is_not_finished(tmp_path):
    _, rows = make_lvis_v1_like(3, n_categories=20, per_image=5, chunks=1, seed=5)
    with pytest.raises(RuntimeError, match="1 images of the split were not predicted, e.g. 3"):
        with DetectionCollector(tmp_path, [1, 2, 3]) as collector:
            collector.add(1, rows[rows[:, 0] == 1])
            collector.add(2, rows[rows[:, 0] == 2])
            collector.finish()
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ reading the file back
def test_the_file_is_read_back_piece_by_piece_into_the_lists_rows(tmp_path, monkeypatch):
    import bench.runs.scoring as scoring
    from bench.metrics.detections import detection_rows

    monkeypatch.setattr(scoring, "PIECE_BYTES", 500)  # many pieces
    gt, rows = make_lvis_v1_like(20, n_categories=20, per_image=10, chunks=2, seed=6)
    store.write_predictions(tmp_path, as_dicts(rows))
    got = scoring.read_prediction_rows(tmp_path)
    assert got.shape == rows.shape and np.array_equal(got, detection_rows(store.read_predictions(tmp_path)))
    task, dataset = EvalTask("lvis_fixed_ap", "coco", 300), SimpleNamespace(coco=gt)
    listed = evaluate("lvis_fixed_ap", gt, store.read_predictions(tmp_path), backend="hotcoco")
    assert json.dumps(scoring.score_saved(task, dataset, tmp_path, "hotcoco").values) == json.dumps(listed.values)


def test_another_layout_or_a_bad_entry_is_read_as_a_list(tmp_path):
    import bench.runs.scoring as scoring

    gt, rows = make_lvis_v1_like(5, n_categories=20, per_image=4, chunks=1, seed=7)
    entries = as_dicts(rows)
    pretty = tmp_path / "pretty"
    pretty.mkdir()
    (pretty / "predictions.json").write_text(json.dumps(entries, indent=1))  # another tool's layout
    assert scoring.read_prediction_rows(pretty) is None
    task, dataset = EvalTask("coco_bbox", "coco", 100), SimpleNamespace(coco=gt)
    assert scoring.score_saved(task, dataset, pretty, "hotcoco").values == pytest.approx(
        evaluate("coco_bbox", gt, entries, backend="hotcoco").values, nan_ok=True)
    bad = tmp_path / "bad"
    entries[3] = {**entries[3], "image_id": 999}  # not in the ground truth: named by its index, as before
    store.write_predictions(bad, entries)
    with pytest.raises(Exception) as listed:
        evaluate("coco_bbox", gt, entries, backend="hotcoco")
    with pytest.raises(Exception) as saved:
        scoring.score_saved(task, dataset, bad, "hotcoco")
    assert str(saved.value) == f"run bad ({bad}): {listed.value}" and "#3" in str(listed.value)
