"""End to end: 2 tasks x 4 regimes x shots {1, 5} x 2 seeds on glip-tiny -> complete, valid records; rescoring."""

from __future__ import annotations

import json
import math

import pytest

from bench.cli import main as cli_main
from bench.models.base import detect_dicts
from bench.results import store
from bench.results.records import validate_record
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.testing.world import make_world

FAST = {"max_iters": 1, "batch_size": 1, "eval_every": 0, "infer_batch_size": 4}


@pytest.mark.slow  # 26 runs: 8.5 s on an idle 2-core machine, over 3 minutes when it is shared
def test_sweep_end_to_end(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    results = tmp_path / "results"
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world",
                        regimes=["zero-shot", "linear-probe", "prompt-tuning", "full-ft"], shots=[1, 5], seeds=[3, 30],
                        overrides=FAST)
    assert len(specs) == 26
    records = run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    assert sorted(r["spec_hash"] for r in records) == sorted(s.hash for s in specs)
    for r in records:
        validate_record(r)
        on_disk = (store.run_dir(results, _spec(r)) / "record.json").read_text()
        assert json.dumps(r) == json.dumps(json.loads(on_disk))  # (json, not ==: NaN metrics are not equal to NaN)
        assert set(r["metrics"]["per_class"]) <= {"red square", "blue circle", "green square", "yellow circle",
                                                  "red circle"}
        cost = r["cost"]
        assert cost["total_params"] > cost["trainable_params"] >= 0
        if r["spec"]["regime"] == "zero-shot":
            assert cost["trainable_params"] == cost["stored_params"] == cost["images_seen"] == 0
            assert r["task"]["split"] == "val" and r["fewshot"] is None
        else:
            assert r["training"]["iters"] == 1 and cost["images_seen"] == 1 and r["task"]["split"] == "test"
        if r["spec"]["regime"] == "prompt-tuning":
            assert cost["stored_params"] == cost["trainable_params"] == 1000 * 32  # only the offset
        if r["spec"]["regime"] == "full-ft":
            assert cost["stored_params"] == cost["total_params"]
    # seeds: the same (task, shots, seed) gives the same sample in every regime; another seed another one
    samples: dict[tuple, set] = {}
    for r in records:
        if r["fewshot"]:
            key = (r["spec"]["task"], r["spec"]["shots"], r["spec"]["seed"])
            samples.setdefault(key, set()).add(tuple(r["fewshot"]["train_image_ids"]))
    assert all(len(v) == 1 for v in samples.values())
    assert samples[("runner-shapes-a", 1, 3)] != samples[("runner-shapes-a", 1, 30)]

    # rerun: everything is skipped, records untouched
    again = run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    assert [r["started_at"] for r in again] == [r["started_at"] for r in records]

    # rescoring from the saved predictions reproduces every stored metric exactly
    before = {r["spec_hash"]: json.dumps(r["metrics"]) for r in records}
    rescored = run_grid(specs, RunContext(data_root=data_root, results_dir=results), rescore=True)
    assert {r["spec_hash"]: json.dumps(r["metrics"]) for r in rescored} == before
    assert cli_main(["score", "--results", str(results), "--data-root", str(data_root)]) == 0
    assert {r["spec_hash"]: json.dumps(r["metrics"]) for r in store.load_records(results)} == before
    assert not list(results.rglob("*.tmp"))


def _spec(record):
    from bench.results.records import RunSpec

    return RunSpec.from_dict(record["spec"])


def test_validation_drives_early_stopping(tmp_path, monkeypatch):
    """A training run that evaluates on the few-shot val split every epoch and keeps its best weights."""
    _, data_root = make_world(tmp_path, monkeypatch)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["prompt-tuning"], shots=[1],
                        seeds=[3], overrides={"batch_size": 4, "max_epochs": 3, "copy_factor": 1, "stop_patience": 2,
                                              "infer_batch_size": 4})
    (r,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results"))
    hist = r["training"]["history"]
    assert 1 <= len(hist) <= 3 and [h["epoch"] for h in hist] == list(range(1, len(hist) + 1))
    assert all(math.isfinite(h["metric"]) for h in hist) and r["training"]["best_epoch"] is not None
    assert r["fewshot"]["val_image_ids"] and r["fewshot"]["val_split"] == "val"


def test_full_data_run_uses_official_full_data_schedule(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-b", regimes=["linear-probe"], shots=[None],
                        seeds=[3], overrides=FAST)
    (r,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    assert r["spec"]["shots"] is None and "__allshot__" in specs[0].run_name
    assert r["fewshot"]["train_source"] == "full" and len(r["fewshot"]["train_image_ids"]) == 10
    assert r["fewshot"]["val_source"] == "full" and len(r["fewshot"]["val_image_ids"]) == 4
    hp = r["hparams"]  # official full-data values: STEP_PATIENCE 2, AUTO_TERMINATE_PATIENCE 4, GENERAL_COPY 1
    assert (hp["step_patience"], hp["stop_patience"], hp["copy_factor"], hp["max_iters"]) == (2, 4, 1, 1)
    assert set(r["provenance"]["ann_sha256"]) == {"test", "train", "val"}


def test_adapter_reproduces_the_run(tmp_path, monkeypatch):
    """The stored tensors on top of the checkpoint give back the run's model: same predictions."""
    import torch

    from bench.models.base import DetectSettings
    from bench.models.cache import ModelCache
    from bench.runs.spec import split_overrides
    from bench.runs.train import load_adapter

    _, data_root = make_world(tmp_path, monkeypatch)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["prompt-tuning"], shots=[1],
                        seeds=[3], overrides={**FAST, "lr": 0.5, "pre_nms_thresh": 0.0, "pre_nms_top_n": 5})
    (r,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    folder = store.run_dir(tmp_path / "results", specs[0])
    from safetensors.torch import load_file

    adapter = load_file(str(folder / store.ADAPTER))
    assert list(adapter) == ["prompt_offset"] and adapter["prompt_offset"].abs().sum() > 0
    torch.manual_seed(123)  # the global RNG state does not matter: the runner builds models from a fixed seed
    model_over, _ = split_overrides(specs[0].overrides, "prompt-tuning")
    assert model_over == {"pre_nms_thresh": 0.0, "pre_nms_top_n": 5}  # untrained: let some boxes through
    model = ModelCache("cpu").get("glip-tiny", None, model_over)  # a fresh base model, as the run started from
    from bench.tasks.registry import get_task

    task = get_task("runner-shapes-a")
    test = task.load("test", data_root)
    chunks = model.prompt_chunks(task, test, "plain")
    settings = DetectSettings(per_chunk_cap=100, per_image_cap=100, batch_size=4, num_workers=0)
    before = detect_dicts(model, test, chunks, settings)
    load_adapter(model.module, folder / store.ADAPTER)
    after = detect_dicts(model, test, chunks, settings)
    saved = store.read_predictions(folder)
    assert len(saved) > 0 and len(after) == len(saved) and before != saved

    def key(p):
        return p["image_id"], p["category_id"], [round(v, 3) for v in p["bbox"]]

    # the same detections; scores equal up to float32 rounding (thread scheduling changes summation order)
    assert [key(p) for p in after] == [key(p) for p in saved]
    assert [p["score"] for p in after] == pytest.approx([p["score"] for p in saved], abs=1e-6)


def test_three_shards_give_exactly_the_records_of_the_unsharded_grid(tmp_path, monkeypatch):
    """`--shard i/3` jobs writing into one results folder end with the unsharded grid's records."""
    _, data_root = make_world(tmp_path, monkeypatch)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot", "linear-probe"],
                        shots=[1], seeds=[3, 30], overrides=FAST)
    whole = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "whole"))
    for i in range(3):
        run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "sharded"), shard=(i, 3))
    sharded = [store.finished_record(tmp_path / "sharded", s) for s in specs]
    assert all(r is not None for r in sharded)
    key = lambda r: r["spec_hash"]  # noqa: E731
    assert [r["spec_hash"] for r in sorted(sharded, key=key)] == [r["spec_hash"] for r in sorted(whole, key=key)]
    for a, b in zip(sorted(whole, key=key), sorted(sharded, key=key)):
        assert json.dumps(a["metrics"]) == json.dumps(b["metrics"])
        assert store.read_predictions(store.run_dir(tmp_path / "whole", _spec(a))) == \
            store.read_predictions(store.run_dir(tmp_path / "sharded", _spec(b)))
    assert len(list((tmp_path / "sharded" / "runs").iterdir())) == len(specs)
