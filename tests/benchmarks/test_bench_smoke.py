"""Every benchmark runs once at tiny sizes (GLIP_BENCH_SMOKE=1, --benchmark-disable), so none can rot unseen.

The benchmarks live outside tests/ and only `nox -s bench` ran them; two of them broke that way (a moved
import, an asserted chunk count). This runs them in their smoke mode (bench/testing/bench_smoke.py): seconds,
no timing, their own correctness checks still on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmarks_run_in_smoke_mode(tmp_path):
    env = {**os.environ, "GLIP_BENCH_SMOKE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "--benchmark-disable", "-x", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(ROOT), "--basetemp", str(tmp_path / "t")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # every benchmark module was collected and something ran (skips: the CUDA and full-size ones)
    assert " passed" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.slow
def test_scoring_scale_runs_in_smoke_mode(tmp_path):
    env = {**os.environ, "GLIP_BENCH_SMOKE": "1", "PYTHONPATH": str(ROOT)}
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scoring_scale.py"), "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {(r["metric"], r["asked"]) for r in rows} == {
        (m, b) for m, ref in (("coco_bbox", "pycocotools"), ("lvis_fixed_ap", "lvis")) for b in (ref, "hotcoco")}
    assert all(r["identical"] for r in rows if r["asked"] == "hotcoco")  # the default equals the references


@pytest.mark.slow
def test_run_memory_runs_in_smoke_mode(tmp_path):
    """benchmarks/run_memory.py (a zero-shot Fixed-AP run's peak memory per split size) at tiny sizes."""
    env = {**os.environ, "GLIP_BENCH_SMOKE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "memory.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_memory.py"), "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["images"] for r in rows] == [10, 30] and all(r["chunks"] == 2 for r in rows)
    assert all(r["saved_detections"] > 0 and r["peak_mb"] >= r["before_mb"] > 0 for r in rows)
    assert "peak at 30 / peak at 10 images" in proc.stdout
