"""Two processes on one results folder share the grid: a run another process holds is left to it (its temp
files untouched), waited for and reused; a crashed holder's claim is free again."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import bench.runs.runner
from bench.results import store
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.testing.world import make_world


def test_a_run_held_by_another_process_is_left_to_it_and_reused(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    results = tmp_path / "results"
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot"], shots=None, seeds=None)
    held, other = specs
    real_run_one = bench.runs.runner.run_one
    ran: list[str] = []
    other_done = threading.Event()

    def counting_run_one(run, ctx):
        ran.append(run.spec.run_name)
        record = real_run_one(run, ctx)
        other_done.set()
        return record

    # the "other process": holds `held`'s claim with a write in flight until this sweep has done the rest
    holding = threading.Event()
    folder = store.run_dir(results, held)
    folder.mkdir(parents=True)
    in_flight = folder / f".{store.PREDICTIONS}.12345.tmp"
    in_flight.write_bytes(b"partial")
    seen: dict[str, bool] = {}

    def holder():
        lock = store.claim(results, held)
        lock.acquire(timeout=0)
        holding.set()
        assert other_done.wait(timeout=300), "the sweep never finished"
        seen["temp file intact"] = in_flight.is_file()
        in_flight.unlink()
        seen["record"] = real_run_one(held, RunContext(data_root=data_root, results_dir=results, num_workers=0))
        lock.release()

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(timeout=60), "the holder never took its claim"
    monkeypatch.setattr(bench.runs.runner, "run_one", counting_run_one)
    records = run_grid(specs, RunContext(data_root=data_root, results_dir=results, num_workers=0))
    t.join(timeout=300)
    assert ran == [other.run_name]  # the held run was computed once, by its holder
    assert seen["temp file intact"]
    assert [r["spec_hash"] for r in records] == sorted(s.hash for s in specs)
    reused = next(r for r in records if r["spec_hash"] == held.hash)
    assert json.dumps(reused) == json.dumps(seen["record"])  # NaN-safe equality: the holder's record


def test_a_crashed_holders_claim_is_recovered(tmp_path):
    from bench.results.records import RunSpec

    spec = RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot")
    path = store.claim(tmp_path, spec).lock_file
    code = (f"import os, signal; from filelock import FileLock; FileLock({path!r}).acquire(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    lock = store.claim(tmp_path, spec)
    lock.acquire(timeout=0)  # raises filelock.Timeout if the dead holder still held it
    assert lock.is_locked
    lock.release()
