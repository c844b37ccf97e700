"""Interrupted sweeps: SIGKILL after the first record, or an exception mid-run, then a rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.results import store
from bench.results.records import validate_record
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.testing.world import make_world

FAST = {"max_iters": 1, "batch_size": 1, "eval_every": 0, "infer_batch_size": 4}


def _state(results):
    """run folder -> (files in it); every record valid; no temp file anywhere."""
    assert not list(results.rglob("*.tmp")), "a partial file was left behind"
    out = {}
    for folder in sorted((results / "runs").iterdir()):
        out[folder.name] = sorted(p.name for p in folder.iterdir())
        if (folder / "record.json").exists():
            validate_record(json.loads((folder / "record.json").read_text()))
    return out


def test_exception_mid_run_leaves_no_finished_record(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    results = tmp_path / "results"
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot"], shots=None, seeds=None,
                        overrides={"infer_batch_size": 4})
    real_write, calls = store.write_record, []

    def failing_write(folder, record):
        calls.append(folder)
        if len(calls) == 2:
            raise RuntimeError("injected failure after the predictions, before the record")
        return real_write(folder, record)

    monkeypatch.setattr(store, "write_record", failing_write)
    with pytest.raises(RuntimeError, match="injected"):
        run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    first, second = sorted(specs, key=lambda s: s.hash)
    assert store.finished_record(results, first) is not None
    assert store.finished_record(results, second) is None  # its predictions exist, but it is not finished
    assert (store.run_dir(results, second) / store.PREDICTIONS).exists()
    started = store.finished_record(results, first)["started_at"]

    monkeypatch.setattr(store, "write_record", real_write)
    records = run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    assert [r["spec_hash"] for r in records] == [first.hash, second.hash]
    assert records[0]["started_at"] == started  # the finished run was not redone
    assert _state(results) == {s.run_name: ["predictions.json.gz", "record.json"] for s in specs}


@pytest.mark.slow  # a subprocess sweep: 15 s on an idle 2-core machine, about 40 s when it is shared
def test_sigkill_then_rerun(tmp_path, monkeypatch):
    tasks_dir, data_root = make_world(tmp_path, monkeypatch)
    results = tmp_path / "results"
    args = ["--model", "glip-tiny", "--tasks", "runner-world", "--regime", "zero-shot,linear-probe", "--shots", "1",
            "--seeds", "3", "--data-root", str(data_root), "--results", str(results)]
    args += [x for k, v in FAST.items() for x in ("--set", f"{k}={v}")]
    env = {**os.environ, "GLIP_BENCH_TASKS": str(tasks_dir), "GLIP_BENCH_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 400
    try:
        while not list(results.rglob("record.json")):
            if proc.poll() is not None:
                pytest.fail(f"the sweep ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no record appeared in time")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed = {p.parent.name for p in results.rglob("record.json")}
    assert 1 <= len(killed) < 4

    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot", "linear-probe"], shots=[1],
                        seeds=[3], overrides=FAST)
    before = {s.hash: r["started_at"] for s in specs if (r := store.finished_record(results, s))}
    records = run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    assert sorted(r["spec_hash"] for r in records) == sorted(s.hash for s in specs)
    assert all(r["started_at"] == before[r["spec_hash"]] for r in records if r["spec_hash"] in before)
    assert _state(results) == {s.run_name: (["adapter.safetensors"] if s.regime != "zero-shot" else [])
                               + ["predictions.json.gz", "record.json"] for s in specs}


def test_records_without_their_predictions_are_run_again(tmp_path, monkeypatch):
    """A fresh clone has results/'s records but not its predictions (git ignores them): the runs are redone,
    not reused as finished, so nothing downstream asks for a file that is not there."""
    _, data_root = make_world(tmp_path, monkeypatch)
    results = tmp_path / "results"
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot"], shots=None, seeds=None,
                        overrides={"infer_batch_size": 4})
    first = run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    assert all(r["files"] == [store.PREDICTIONS] for r in first)
    for spec in specs:
        store.predictions_path(store.run_dir(results, spec)).unlink()
    again = run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    assert all(a["started_at"] != b["started_at"] for a, b in zip(again, first))  # redone, not skipped
    assert [r["metrics"] for r in again] == [r["metrics"] for r in first]
    assert _state(results) == {s.run_name: ["predictions.json.gz", "record.json"] for s in specs}
