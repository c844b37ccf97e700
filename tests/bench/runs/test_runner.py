"""Grid expansion, shards, override parsing and every bad spec failing before any compute."""

from __future__ import annotations

import pytest

from bench.cli import main as cli_main
from bench.models.base import detect_dicts
from bench.results.records import RunSpec
from bench.runs.spec import RunContext, expand_grid, shard_specs, split_overrides, validate_specs
from bench.testing.world import make_world
from bench.util.errors import UserError

ALL = ["zero-shot", "linear-probe", "prompt-tuning", "full-ft"]


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


@pytest.fixture
def no_compute(monkeypatch):
    """Any attempt to build a model fails the test: validation must come first."""
    import bench.models.cache

    def boom(*a, **k):
        raise AssertionError("a model was built before the specs were validated")

    monkeypatch.setattr(bench.models.cache, "build_adapter", boom)


def test_grid_expansion(world):
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=ALL, shots=[1, 5], seeds=[3, 30],
                        overrides={"max_iters": 1, "fusion": "late"})
    assert len(specs) == 2 * (1 + 3 * 2 * 2) == len({s.hash for s in specs})
    zs = [s for s in specs if s.regime == "zero-shot"]
    assert {(s.shots, s.seed, s.split) for s in zs} == {(0, 0, "val")}
    assert all(s.overrides == {"fusion": "late"} for s in zs)  # training budgets do not touch zero-shot specs
    trained = [s for s in specs if s.regime != "zero-shot"]
    assert all(s.split == "test" and s.overrides == {"fusion": "late", "max_iters": 1} for s in trained)
    default = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["full-ft"], shots=None, seeds=None)
    assert sorted((s.shots, s.seed) for s in default) == sorted((k, s) for k in (1, 3, 5, 10) for s in (3, 30, 300))
    full = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["full-ft"], shots=[None], seeds=[3])
    assert full[0].shots is None and full[0].shots_label == "all"


def test_shards_are_disjoint_and_cover_the_grid(world):
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=ALL, shots=[1, 3, 5], seeds=[3, 30])
    parts = [shard_specs(specs, i, 3) for i in range(3)]
    hashes = [s.hash for p in parts for s in p]
    assert sorted(hashes) == sorted(s.hash for s in specs) and len(set(hashes)) == len(hashes)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [s.hash for s in shard_specs(list(reversed(specs)), 1, 3)] == [s.hash for s in parts[1]]
    with pytest.raises(UserError, match="0 <= i < N"):
        shard_specs(specs, 3, 3)


def test_override_split():
    model, regime = split_overrides({"fusion": "late", "lr": 0.01}, "prompt-tuning")
    assert model == {"fusion": "late"} and regime == {"lr": 0.01}


@pytest.mark.parametrize("make, match", [
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="few-shot"), "full-ft"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot", shots=5), "drop --shots"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="full-ft", shots=0), "shots >= 1"),
    (lambda: RunSpec(model="glip-tinny", task="runner-shapes-a", regime="zero-shot"), "glip-tiny"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-c", regime="zero-shot"), "runner-shapes-a"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="full-ft", shots=1, overrides={"lrr": 1.0}),
     "Did you mean 'lr'"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot", overrides={"lr": 1.0}),
     "unknown override key 'lr'"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot", overrides={"fusion": "mid"}),
     "fusion"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot", checkpoint="nope.safetensors"),
     "checkpoint not found"),
    (lambda: RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot", prompt_set="official"),
     "plain"),
])
def test_bad_specs_fail_before_compute(world, no_compute, make, match):
    _, data_root = world
    with pytest.raises(UserError, match=match):
        validate_specs([make()], data_root)


def test_missing_data_fails_before_compute(world, no_compute, tmp_path):
    from bench.runs.runner import run_grid

    _, data_root = world
    (data_root / "runner" / "runner-shapes-b" / "train" / "ann.json").unlink()
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot", "linear-probe"],
                        shots=[1], seeds=[3])
    with pytest.raises(UserError, match=r"runner-shapes-b.*split 'train' is missing"):
        run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results"))
    assert not (tmp_path / "results").exists()
    validate_specs([s for s in specs if s.regime == "zero-shot"], data_root)  # zero-shot does not need train


def test_cli_dry_run_and_errors(world, no_compute, capsys, tmp_path):
    _, data_root = world
    base = ["run", "--model", "glip-tiny", "--tasks", "runner-world", "--data-root", str(data_root)]
    assert cli_main([*base, "--regime", "zero-shot,full-ft", "--shots", "1,all", "--seeds", "3", "--dry-run",
                     "--set", "max_iters=1", "--set", "lr=1e-3"]) == 0
    out = capsys.readouterr().out.split()
    assert len(out) == 2 * 3 and sum("__allshot__" in n for n in out) == 2
    assert cli_main([*base, "--regime", "zero-shot", "--shots", "1", "--dry-run"]) == 2
    assert "zero-shot runs take no --shots" in capsys.readouterr().err
    assert cli_main([*base, "--regime", "full-ft", "--set", "bogus=1", "--dry-run"]) == 2
    assert "unknown override key 'bogus'" in capsys.readouterr().err
    assert cli_main([*base, "--regime", "full-ft", "--shard", "2/2", "--dry-run"]) == 2
    assert cli_main([*base, "--regime", "full-ft", "--set", "lr", "--dry-run"]) == 2


def test_parse_values():
    from bench.commands.run import parse_overrides

    assert parse_overrides(["lr=1e-4", "amp=false", "max_iters=none", "fusion=late", "swin_depths=[1, 1, 2, 1]",
                            "x=(1, 2)"]) == {"lr": 1e-4, "amp": False, "max_iters": None, "fusion": "late",
                                             "swin_depths": [1, 1, 2, 1], "x": (1, 2)}


def test_chunked_prompt_merge_matches_per_chunk_detection(world):
    """One forward pass per chunk, labels -> category ids, merged by score under the per-image cap."""
    import torch

    from bench.models.base import DetectSettings
    from bench.models.cache import ModelCache
    from bench.tasks.registry import get_task

    tasks_dir, data_root = world
    path = tasks_dir / "runner-shapes-b.yaml"
    path.write_text(path.read_text().replace("chunk_size: null", "chunk_size: 1").replace(
        "detections_per_image: 100", "detections_per_image: 4"))
    from bench.tasks.registry import load_registry

    load_registry(tasks_dir, reload=True)
    task = get_task("runner-shapes-b")
    data = task.load("val", data_root)
    data = data.subset(data.image_ids[:2])
    torch.manual_seed(0)
    adapter = ModelCache("cpu").get("glip-tiny", None, {})
    model = adapter.module
    model.postprocessor.pre_nms_thresh = 0.0  # an untrained model: let candidates through, but few (fast NMS)
    model.postprocessor.pre_nms_top_n = 5
    chunks = adapter.prompt_chunks(task, data, "plain")
    assert [ids for _, ids in chunks] == [[1], [2], [3]]
    preds = detect_dicts(adapter, data, chunks, DetectSettings(per_chunk_cap=4, per_image_cap=4))
    for image_id in data.image_ids:
        got = [p for p in preds if p["image_id"] == image_id]
        images = model.preprocess([data.load_image(image_id)])
        brute = []
        for ch, ids in chunks:
            d = model.detect(images, [ch.caption], [ch.positive_map])[0]
            brute += [(s, ids[lab]) for s, lab in zip(d.scores.tolist(), d.labels.tolist())]
        brute = sorted(brute, key=lambda t: -t[0])[:4]
        assert len(brute) == 4 and [(p["score"], p["category_id"]) for p in got] == brute


def test_bert_presets_need_a_text_encoder_before_any_compute(tmp_path):
    from bench.results.records import RunSpec
    from bench.runs.spec import validate_specs
    from bench.util.errors import UserError

    spec = RunSpec(model="glip-t", task="synth-shapes", regime="zero-shot", split="test")
    with pytest.raises(UserError, match="--text-encoder"):
        validate_specs([spec], tmp_path)
    with pytest.raises(UserError, match="no such directory"):
        validate_specs([spec], tmp_path, text_encoder=tmp_path / "missing-bert")


def test_scoring_the_saved_file_equals_scoring_the_predictions(world, tmp_path):
    """run_one scores its predictions file (one JSON encoding per run); the numbers are those of
    scoring the predictions in memory."""
    import json
    import random
    from dataclasses import asdict

    from bench.results import store
    from bench.results.records import Metrics
    from bench.runs.scoring import score, score_saved
    from bench.tasks.registry import get_task

    _, data_root = world
    task = get_task("runner-shapes-a")
    data = task.load("val", data_root)
    rng = random.Random(0)
    preds = [{"image_id": a["image_id"], "category_id": rng.choice([1, 2]),
              "bbox": [v + rng.uniform(-3, 3) for v in a["bbox"]], "score": rng.random()}
             for a in data.coco["annotations"] for _ in range(3)]
    store.write_predictions(tmp_path / "run", preds)
    saved = asdict(Metrics.from_result(score_saved(task, data, tmp_path / "run", "hotcoco")))
    assert json.dumps(saved) == json.dumps(asdict(Metrics.from_result(score(task, data, preds, "hotcoco"))))  # NaN-safe equality
    assert 0 < saved["values"]["AP50"] <= 100


def test_gc_paused_restores_the_collector():
    import gc

    from bench.runs.scoring import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("scoring failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_model_cache_freezes_the_heap_once_per_build(monkeypatch):
    """Full collections skip what existed at the build (bench.models.cache.freeze_gc_heap); a rebuild unfreezes first,
    so a replaced model's objects can be collected again."""
    import gc

    from bench.models.cache import ModelCache

    gc.unfreeze()
    events: list[str] = []
    real_unfreeze, real_freeze = gc.unfreeze, gc.freeze
    monkeypatch.setattr(gc, "unfreeze", lambda: (events.append("unfreeze"), real_unfreeze())[1])
    monkeypatch.setattr(gc, "freeze", lambda: (events.append("freeze"), real_freeze())[1])
    cache = ModelCache("cpu")
    try:
        cache.get("glip-tiny", None, {})
        assert events == ["unfreeze", "freeze"] and gc.get_freeze_count() > 1000
        cache.get("glip-tiny", None, {})  # same model: no rebuild
        assert events == ["unfreeze", "freeze"]
        cache.get("glip-tiny", None, {"num_blocks": 1})
        assert events == ["unfreeze", "freeze", "unfreeze", "freeze"]
    finally:
        real_unfreeze()


def test_infer_amp_is_bf16_autocast_on_cuda_only():
    import torch

    from bench.runs.hparams import resolve_hparams
    from bench.runs.predict import inference_autocast
    from bench.runs.regimes import get_regime

    assert resolve_hparams(get_regime("zero-shot"), None).infer.infer_amp is False  # official float32 by default
    assert resolve_hparams(get_regime("zero-shot"), None, {"infer_amp": True}).infer.infer_amp is True
    with pytest.raises(UserError, match="infer_amp"):
        resolve_hparams(get_regime("zero-shot"), None, {"infer_amp": "yes"})
    assert inference_autocast(True, "cuda") is torch.bfloat16 and inference_autocast(True, "cuda:1") is torch.bfloat16
    assert inference_autocast(True, "cpu") is None and inference_autocast(False, "cuda") is None
