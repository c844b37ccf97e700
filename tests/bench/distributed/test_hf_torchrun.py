"""`glip-bench run --model hf:DIR` under torchrun: 2 CPU processes (gloo) predict disjoint shards, rank 0 merges
and scores, and the record is the record of 1 process (Grounding DINO, OWLv2), as for GLIP
(test_run_torchrun.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from bench.dist.inference import SHARD_DIR
from bench.results import store
from bench.testing.hf import TASK, make_data, save_tiny


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 1-process and 2-process subprocess runs per family: ~1 min on the shared 2-core machine
@pytest.mark.parametrize("family", ["grounding-dino", "owlv2"])
def test_two_processes_give_the_record_of_one(family, tmp_path):
    data_root = make_data(tmp_path / "data")
    model_dir = save_tiny(family, tmp_path / family)
    common = ["-m", "bench.cli", "run", "--model", f"hf:{model_dir}", "--tasks", TASK, "--regime", "zero-shot",
              "--data-root", str(data_root)]
    env = {**os.environ, "GLIP_BENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "GLIP_BENCH_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, *common, "--results", str(one)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), *common, "--results", str(two)]
    multi = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "rank 1/2: predicted pieces [1, 3, 5, 7]" in multi.stderr  # 8 val images -> 8 one-image pieces
    (f1,), (f2,) = ((d / "runs").iterdir() for d in (one, two))
    r1, r2 = (store.load_record(f / store.RECORD) for f in (f1, f2))
    assert r1["provenance"]["world_size"] == 1 and r2["provenance"]["world_size"] == 2
    p1 = store.read_predictions(f1)
    assert len(p1) > 20 and store.read_predictions(f2) == p1
    assert r2["metrics"] == r1["metrics"]
    assert r2["provenance"]["model_limits"] == r1["provenance"]["model_limits"]
    assert not list(two.rglob(SHARD_DIR))
