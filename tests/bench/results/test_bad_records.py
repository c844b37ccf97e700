"""A record on disk is user input: every malformed one is rc 2 naming the file, in leaderboard, score
--results and run (resume), and nothing is rewritten before the error. Unwritable results folders too."""

from __future__ import annotations

import errno
import json
import math

import pytest

from bench.cli import main
from bench.results import store
from bench.results.records import SCHEMA_VERSION, RunSpec, validate_record
from bench.testing.world import make_world
from bench.util.errors import UserError

SPEC = RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot")


def _good(spec: RunSpec) -> dict:
    return {
        "schema_version": 1, "spec": spec.to_dict(), "spec_hash": spec.hash,
        "task": {"name": spec.task, "version": 1, "groups": [], "metric": "coco_bbox", "split": "val", "num_images": 2},
        "metrics": {"primary": "AP", "values": {"AP": 12.5, "AP50": math.nan}, "per_class": {}},
        "cost": dict.fromkeys(("total_params", "trainable_params", "stored_params", "train_seconds", "images_seen",
                               "infer_images_per_s", "peak_memory_mb", "device_hours"), 0) | {"device": "cpu"},
        "provenance": dict.fromkeys(("git_commit", "git_dirty", "packages", "torch", "cuda", "seeds", "ann_sha256",
                                     "checkpoint_sha256", "prompt_set", "chunk_size", "metric_backend")),
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z", "wall_seconds": 1.0,
    }


def _edit(path: str, value):
    def edit(record):
        *parents, last = path.split(".")
        node = record
        for p in parents:
            node = node[p]
        node[last] = value
        return record
    return edit


BAD = {
    "overrides-list": (_edit("spec.overrides", []), "run-spec field 'overrides' must be a mapping"),
    "version-string": (_edit("task.version", "v1"), "task.version must be an integer"),
    "groups-int": (_edit("task.groups", 5), "task.groups must be a list of strings"),
    "a-list": (lambda r: [], "a record is a JSON object, got list"),
    "null": (lambda r: None, "a record is a JSON object, got NoneType"),
    "files-ints": (_edit("files", [123]), "'files' must be a list of file names"),
    "files-string": (_edit("files", "predictions.json.gz"), "'files' must be a list of file names"),
    "future": (_edit("schema_version", SCHEMA_VERSION + 1), "newer than this glip-bench's"),
    "seed-bool": (_edit("spec.seed", True), "run-spec field 'seed' must be an integer"),
    "device-number": (_edit("cost.device", 3), "cost.device must be a string"),
    "metric-bool": (_edit("metrics.values.AP", True), "metric AP=True is not a number"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_validate_record_names_each_wrong_shape(name):
    edit, message = BAD[name]
    with pytest.raises(ValueError, match=message):
        validate_record(edit(_good(SPEC)))


def _results_with(tmp_path, bad_record_text: str | None, *, directory: bool = False):
    """A results folder with one good run (record + predictions) and one bad record.json."""
    results = tmp_path / "results"
    good = store.run_dir(results, SPEC)
    store.write_predictions(good, [])
    store.write_record(good, _good(SPEC))
    bad = results / "runs" / "zz-bad" / store.RECORD
    if directory:
        bad.mkdir(parents=True)
    else:
        bad.parent.mkdir(parents=True)
        bad.write_text(bad_record_text)
    return results, good / store.RECORD, bad


@pytest.mark.parametrize("name", ["overrides-list", "version-string", "groups-int", "a-list", "null", "files-ints",
                                  "future", "directory"])
@pytest.mark.parametrize("command", ["leaderboard", "score"])
def test_leaderboard_and_score_results_refuse_by_name_and_rewrite_nothing(tmp_path, capsys, name, command):
    text = None if name == "directory" else json.dumps(BAD[name][0](_good(SPEC)))
    results, good, bad = _results_with(tmp_path, text, directory=name == "directory")
    before = good.read_bytes(), good.stat().st_mtime_ns
    argv = ["leaderboard", "--results", str(results)] if command == "leaderboard" else ["score", "--results", str(results)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"invalid record {bad}" in err and "Traceback" not in err, err
    assert (good.read_bytes(), good.stat().st_mtime_ns) == before


def test_a_record_listing_a_string_names_it_not_its_letters(tmp_path):
    results, _, bad = _results_with(tmp_path, json.dumps(BAD["files-string"][0](_good(SPEC))))
    with pytest.raises(UserError) as e:
        store.load_records(results)
    assert "'predictions.json.gz'" in str(e.value) and "p, r, e, d" not in str(e.value)


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def _cli_specs():
    """The specs _run's command line makes."""
    from bench.runs.spec import expand_grid

    return expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["zero-shot"], shots=None, seeds=None)


def _run(data_root, results, *extra):
    return main(["run", "--model", "glip-tiny", "--tasks", "runner-shapes-a", "--regime", "zero-shot",
                 "--data-root", str(data_root), "--results", str(results), "--workers", "0", *extra])


@pytest.mark.parametrize("name", ["future", "groups-int", "null"])
def test_run_resume_refuses_a_bad_record_and_keeps_it(world, tmp_path, capsys, name):
    (spec,) = _cli_specs()
    results = tmp_path / "results"
    path = store.record_path(results, spec)
    path.parent.mkdir(parents=True)
    text = json.dumps(BAD[name][0](_good(spec)))
    path.write_text(text)
    assert _run(world[1], results) == 2
    err = capsys.readouterr().err
    assert f"invalid record {path}" in err and "Traceback" not in err, err
    assert path.read_text() == text  # not run over


def test_results_that_is_a_file_is_named(world, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert _run(world[1], target) == 2
    assert f"--results {target} is a file" in capsys.readouterr().err
    assert main(["leaderboard", "--results", str(target)]) == 2
    assert f"results folder {target} is not a folder" in capsys.readouterr().err
    assert main(["score", "--results", str(target)]) == 2
    assert f"results folder {target} is not a folder" in capsys.readouterr().err


def _raise(err):
    def fail(*args, **kwargs):
        raise OSError(err, __import__("os").strerror(err))
    return fail


def test_a_read_only_results_folder_is_named(world, tmp_path, capsys, monkeypatch):
    """The lock file is the first write; tests run as root, which a chmod would not stop: the error is made."""
    from filelock import FileLock

    monkeypatch.setattr(FileLock, "acquire", _raise(errno.EROFS))
    assert _run(world[1], tmp_path / "results") == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and str(tmp_path / "results" / store.LOCKS) in err and "read-only" in err, err


@pytest.mark.parametrize("target", ["predictions", "record"])
def test_a_full_disk_is_named_and_a_rerun_works(world, tmp_path, capsys, monkeypatch, target):
    """ENOSPC while writing the predictions or the record: rc 2 naming the file; the folder stays consistent
    (no record), and the rerun finishes."""
    import bench.util.io as io

    real = io.os.fsync
    name = store.PREDICTIONS if target == "predictions" else store.RECORD

    def fsync(fd):
        if __import__("os").readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    results = tmp_path / "results"
    (spec,) = _cli_specs()
    monkeypatch.setattr(io.os, "fsync", fsync)
    assert _run(world[1], results) == 2
    err = capsys.readouterr().err
    assert f"cannot write {store.run_dir(results, spec) / name}" in err and "free some disk space" in err, err
    assert store.finished_record(results, spec) is None
    assert not list(store.run_dir(results, spec).glob(".*.tmp"))
    if target == "predictions":
        return
    monkeypatch.setattr(io.os, "fsync", real)
    assert _run(world[1], results) == 0
    assert store.finished_record(results, spec) is not None


def test_a_full_disk_while_writing_the_adapter_is_named(tmp_path, monkeypatch):
    import os

    import torch

    from bench.runs.stages import write_adapter

    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    with pytest.raises(UserError, match=rf"cannot write {tmp_path / store.ADAPTER}: No space left on device; free"):
        write_adapter(tmp_path, {"w": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_files_null_means_the_predictions(tmp_path):
    """`files: null` is a valid record (written before the list existed): it needs the predictions."""
    results = tmp_path / "results"
    folder = store.run_dir(results, SPEC)
    store.write_record(folder, {**_good(SPEC), "files": None})
    assert store.finished_record(results, SPEC) is None  # no predictions yet: not finished, and no crash
    store.write_predictions(folder, [])
    assert store.finished_record(results, SPEC)["files"] is None
