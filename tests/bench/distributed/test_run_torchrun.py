"""`glip-bench run` under torchrun: 2 CPU processes (gloo) give the records of 1 process, shard by shard.

The slow test runs the real command lines; the fast ones drive the runner in-process, with the process group
faked by patching bench.dist.comm (rank / world size), to check the resume of a crashed data-parallel run and the
refusal of training regimes under torchrun.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main as cli_main
from bench.dist import comm as dist
from bench.dist.inference import SHARD_DIR
from bench.results import store
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.runs.stages import run_one
from bench.testing.world import make_world
from bench.util.errors import UserError

TASK_A, TASK_B = "runner-shapes-a", "runner-shapes-b"


def _weights(path: Path) -> Path:
    """glip-tiny at its fixed random init, token bias 0 so scores pass the 0.05 candidate threshold."""
    from glip.checkpoint import save_weights
    from glip.config import get_preset
    from glip.model import GLIP

    torch.manual_seed(0)
    model = GLIP(get_preset("glip-tiny")).eval()
    with torch.no_grad():
        model.head.bias0.fill_(0.0)
    save_weights(model, path)
    return path


def _run_folder(results: Path, task: str) -> Path:
    (folder,) = (results / "runs").glob(f"{task}__*")
    return folder


def _oracle_ground_truth(data_root: Path, task: str, predictions: list[dict], per_image: int = 2) -> None:
    """Rewrite the val annotations as each image's top predictions, so the metrics are far from 0 and move
    with every box and score (random weights score 0 AP on the real boxes)."""
    ann = data_root / "runner" / task / "val" / "ann.json"
    coco = json.loads(ann.read_text())
    anns = []
    for image in coco["images"]:
        mine = sorted((p for p in predictions if p["image_id"] == image["id"]), key=lambda p: -p["score"])
        for p in mine[:per_image]:
            x, y, w, h = p["bbox"]
            anns.append({"id": len(anns) + 1, "image_id": image["id"], "category_id": p["category_id"],
                         "bbox": [x, y, w - 1, h - 1], "area": (w - 1) * (h - 1), "iscrowd": 0})
    coco["annotations"] = anns
    ann.write_text(json.dumps(coco))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two subprocess runs (1 process, then torchrun with 2): 20-40 s on the shared 2-core machine
def test_torchrun_two_processes_give_the_records_of_one(tmp_path, monkeypatch):
    tasks_dir, data_root = make_world(tmp_path, monkeypatch)
    weights = _weights(tmp_path / "w.safetensors")
    common = ["run", "--model", "glip-tiny", "--checkpoint", str(weights), "--tasks", "runner-world",
              "--regime", "zero-shot", "--data-root", str(data_root)]
    probe = [x if x != "runner-world" else TASK_A for x in common]
    assert cli_main([*probe, "--results", str(tmp_path / "probe")]) == 0
    _oracle_ground_truth(data_root, TASK_A, store.read_predictions(_run_folder(tmp_path / "probe", TASK_A)))

    env = {**os.environ, "GLIP_BENCH_TASKS": str(tasks_dir), "GLIP_BENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
           "GLIP_BENCH_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, "-m", "bench.cli", *common, "--results", str(one)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    # task B already finished in the 2-process results: rank 0 must tell rank 1 to skip it too
    shutil.copytree(_run_folder(one, TASK_B), two / "runs" / _run_folder(one, TASK_B).name)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "bench.cli", *common, "--results", str(two)]
    multi = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "rank 1/2: predicted pieces [1, 3]" in multi.stderr  # 4 val images -> 4 one-image pieces
    assert multi.stdout.count("zero-shot") == 2  # only rank 0 prints the table

    a1, a2 = (store.load_record(_run_folder(d, TASK_A) / store.RECORD) for d in (one, two))
    assert a1["provenance"]["world_size"] == 1 and a2["provenance"]["world_size"] == 2
    preds = store.read_predictions(_run_folder(one, TASK_A))
    assert len(preds) > 20
    assert store.read_predictions(_run_folder(two, TASK_A)) == preds
    assert a1["metrics"]["values"]["AP"] > 20  # the oracle ground truth makes the comparison bite
    assert a2["metrics"] == a1["metrics"]
    b1, b2 = (store.load_record(_run_folder(d, TASK_B) / store.RECORD) for d in (one, two))
    assert b2 == b1  # skipped, not redone
    assert not list(two.rglob(SHARD_DIR)) and not list(two.rglob("*.tmp"))


@pytest.mark.slow  # two subprocess training runs (1 process, torchrun with 2): ~20 s on the shared 2-core machine
def test_torchrun_linear_probe_trains_data_parallel(tmp_path, monkeypatch):
    """A training regime under torchrun: DDP training (bench.runs.train), then sharded inference of the trained model."""
    from safetensors.torch import load_file

    tasks_dir, data_root = make_world(tmp_path, monkeypatch)
    weights = _weights(tmp_path / "w.safetensors")
    common = ["-m", "bench.cli", "run", "--model", "glip-tiny", "--checkpoint", str(weights), "--tasks", TASK_A,
              "--regime", "linear-probe", "--shots", "2", "--seeds", "3", "--set", "max_iters=3",
              "--set", "batch_size=2", "--data-root", str(data_root)]
    env = {**os.environ, "GLIP_BENCH_TASKS": str(tasks_dir), "GLIP_BENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
           "GLIP_BENCH_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, *common, "--results", str(one)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), *common, "--results", str(two)]
    multi = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    r1, r2 = (store.load_record(_run_folder(d, TASK_A) / store.RECORD) for d in (one, two))
    assert r2["provenance"]["world_size"] == 2 and r2["training"]["world_size"] == 2
    assert (r2["training"]["iters"], r2["training"]["images_seen"]) == (r1["training"]["iters"],
                                                                         r1["training"]["images_seen"]) == (3, 6)
    # the same global batches, gradients averaged over 2 ranks: the same weights up to float rounding
    a1, a2 = (load_file(_run_folder(d, TASK_A) / store.ADAPTER) for d in (one, two))
    assert a1.keys() == a2.keys() and all(torch.allclose(a1[k], a2[k], atol=1e-2) for k in a1)
    start = load_file(weights)
    assert any(not torch.equal(a1[k], start[k]) for k in a1)  # it trained
    p1, p2 = (store.read_predictions(_run_folder(d, TASK_A)) for d in (one, two))
    assert len(p1) == len(p2) > 20
    assert [p["image_id"] for p in p1] == [p["image_id"] for p in p2]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(p1, p2)) < 1e-2
    assert not list(two.rglob(SHARD_DIR))


def _fake_world(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(dist, "rank", lambda: rank)
    monkeypatch.setattr(dist, "world_size", lambda: world)
    monkeypatch.setattr(dist, "is_main", lambda: rank == 0)


def test_crashed_data_parallel_run_resumes_in_one_process(tmp_path, monkeypatch):
    """Rank 1 of 2 wrote its shards, rank 0 died: a 1-process rerun predicts only rank 0's images and merges."""
    import bench.models.glip

    _, data_root = make_world(tmp_path, monkeypatch)
    weights = _weights(tmp_path / "w.safetensors")
    (spec,) = expand_grid(models=["glip-tiny"], tasks=[TASK_A], regimes=["zero-shot"], shots=None, seeds=None,
                          checkpoint=str(weights))
    clean = run_one(spec, RunContext(data_root=data_root, results_dir=tmp_path / "clean", num_workers=0))
    expected = store.read_predictions(store.run_dir(tmp_path / "clean", spec))
    assert len(expected) > 20 and clean["provenance"]["world_size"] == 1

    asked: list[list[int]] = []
    real = bench.models.glip.iter_detection

    def spy(*a, image_ids=None, **k):
        asked.append(list(image_ids) if image_ids is not None else None)
        return real(*a, image_ids=image_ids, **k)

    monkeypatch.setattr(bench.models.glip, "iter_detection", spy)
    results = tmp_path / "results"
    folder = store.run_dir(results, spec)
    with monkeypatch.context() as m:
        _fake_world(m, rank=1, world=2)
        assert run_one(spec, RunContext(data_root=data_root, results_dir=results, num_workers=0)) is None
    assert asked == [[2], [4]]  # 4 val images (ids 1-4), one per piece; rank 1 owns pieces 1 and 3
    assert len(list((folder / SHARD_DIR).glob("piece-*.json"))) == 2 and not (folder / store.RECORD).exists()

    asked.clear()
    record = run_one(spec, RunContext(data_root=data_root, results_dir=results, num_workers=0))
    assert asked == [[1], [3]]  # only the missing pieces
    assert store.read_predictions(folder) == expected
    assert record["metrics"] == clean["metrics"]
    assert not (folder / SHARD_DIR).exists()


def test_an_uneven_global_batch_is_refused_under_torchrun_before_compute(tmp_path, monkeypatch):
    import bench.models.cache

    _, data_root = make_world(tmp_path, monkeypatch)
    monkeypatch.setattr(bench.models.cache, "build_adapter", lambda *a, **k: pytest.fail("built a model"))
    specs = expand_grid(models=["glip-tiny"], tasks=[TASK_A], regimes=["zero-shot", "linear-probe"], shots=[1],
                        seeds=[3], overrides={"batch_size": 3})
    _fake_world(monkeypatch, rank=0, world=2)
    with pytest.raises(UserError, match="batch_size 3 is the global batch .* divisible by the 2 processes"):
        run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results"))
