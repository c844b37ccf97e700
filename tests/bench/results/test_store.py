"""Run folders, atomic records and predictions, resume detection."""

from __future__ import annotations

import json

import pytest

from bench.results import store
from bench.results.records import RunSpec
from bench.util.errors import UserError


def _record(spec: RunSpec) -> dict:
    return {
        "schema_version": 1, "spec": spec.to_dict(), "spec_hash": spec.hash,
        "task": {"name": spec.task, "version": 1, "groups": [], "metric": "coco_bbox", "split": "val", "num_images": 2},
        "metrics": {"primary": "AP", "values": {"AP": 12.5, "AP50": float("nan")}, "per_class": {}},
        "cost": {k: 0 for k in ("total_params", "trainable_params", "stored_params", "train_seconds", "images_seen",
                                "infer_images_per_s", "peak_memory_mb", "device_hours")} | {"device": "cpu"},
        "provenance": {k: None for k in ("git_commit", "git_dirty", "packages", "torch", "cuda", "seeds", "ann_sha256",
                                         "checkpoint_sha256", "prompt_set", "chunk_size", "metric_backend")},
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z", "wall_seconds": 1.0,
    }


def test_finished_only_after_valid_record(tmp_path):
    spec = RunSpec(model="glip-tiny", task="t", regime="zero-shot")
    folder = store.run_dir(tmp_path, spec)
    assert store.finished_record(tmp_path, spec) is None
    store.write_predictions(folder, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])
    assert store.finished_record(tmp_path, spec) is None  # predictions alone are not a finished run
    (folder / "record.json").write_text("{truncated")  # records are written atomically: this is not ours
    with pytest.raises(UserError, match=f"invalid record {folder / 'record.json'}: .*delete its run folder"):
        store.finished_record(tmp_path, spec)
    store.write_record(folder, _record(spec))
    got = store.finished_record(tmp_path, spec)
    assert got is not None and got["spec_hash"] == spec.hash
    # a record of another spec in this folder does not count
    other = RunSpec(model="glip-tiny", task="t", regime="linear-probe", shots=1, seed=3)
    (store.run_dir(tmp_path, other)).mkdir(parents=True)
    (store.record_path(tmp_path, other)).write_text(json.dumps(_record(spec)))
    assert store.finished_record(tmp_path, other) is None


def test_invalid_record_is_not_written(tmp_path):
    spec = RunSpec(model="glip-tiny", task="t", regime="zero-shot")
    bad = _record(spec)
    bad["metrics"]["values"]["AP"] = 140.0
    with pytest.raises(ValueError):
        store.write_record(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


def test_predictions_round_trip_and_bytes_stable(tmp_path):
    preds = [{"image_id": 3, "category_id": 2, "bbox": [1.25, 2.0, 3.0, 4.5], "score": 0.123456789012345}]
    p1 = store.write_predictions(tmp_path / "a", preds)
    p2 = store.write_predictions(tmp_path / "b", preds)
    assert p1.read_bytes() == p2.read_bytes()
    assert store.read_predictions(tmp_path / "a") == preds


def test_clean_partial_removes_only_temp_files(tmp_path):
    (tmp_path / ".record.json.abc.tmp").write_text("x")
    (tmp_path / "predictions.json.gz").write_text("x")
    removed = store.clean_partial(tmp_path)
    assert [p.name for p in removed] == [".record.json.abc.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json.gz"]


def test_load_records_recursive_refuses_invalid(tmp_path):
    a = RunSpec(model="m", task="t", regime="zero-shot")
    b = RunSpec(model="m", task="u", regime="zero-shot")
    store.write_record(store.run_dir(tmp_path / "x", a), _record(a))
    store.write_record(store.run_dir(tmp_path / "y", b), _record(b))
    (tmp_path / "z").mkdir()
    assert sorted(r["spec"]["task"] for r in store.load_records(tmp_path)) == ["t", "u"]
    (tmp_path / "z" / "record.json").write_text("{}")
    with pytest.raises(UserError, match=f"invalid record {tmp_path / 'z' / 'record.json'}: record schema_version None"):
        store.load_records(tmp_path)


def test_predictions_floats_read_back_exactly_with_either_parser(tmp_path):
    """orjson writes the file; every float (float32 values of any magnitude, as the model outputs) reads back
    bit-identical, through orjson and through the standard library alike."""
    import gzip

    import numpy as np

    rng = np.random.default_rng(0)
    values = (rng.uniform(-1, 1, 4000) * 10.0 ** rng.integers(-9, 6, 4000)).astype(np.float32).tolist()
    preds = [{"image_id": k, "category_id": 1, "bbox": values[4 * k: 4 * k + 4], "score": values[k]}
             for k in range(1000)]
    path = store.write_predictions(tmp_path, preds)
    assert store.read_predictions(tmp_path) == preds
    assert json.loads(gzip.decompress(path.read_bytes())) == preds


def test_predictions_with_nan_literals_still_read(tmp_path):
    """A predictions.json from another tool may hold NaN (standard-library JSON); reading falls back to it."""
    (tmp_path / "predictions.json").write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], '
                                               '"score": NaN}]')
    (pred,) = store.read_predictions(tmp_path)
    assert pred["score"] != pred["score"]  # NaN


def test_nan_predictions_are_saved_as_null_and_refused_by_name(tmp_path):
    from bench.metrics import evaluate
    from bench.util.errors import UserError

    store.write_predictions(tmp_path, [{"image_id": 1, "category_id": 1, "bbox": [0, float("nan"), 1, 1],
                                        "score": 0.5}])
    (pred,) = store.read_predictions(tmp_path)
    assert pred["bbox"][1] is None
    gt = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}]}
    with pytest.raises(UserError, match="prediction #0 has a null box or score"):
        evaluate("coco_bbox", gt, [pred])


def _finished_pair(tmp_path, spec, record):
    folder = store.run_dir(tmp_path, spec)
    store.write_predictions(folder, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])
    store.write_record(folder, record)
    return folder


def test_a_record_without_the_files_it_lists_is_not_finished(tmp_path):
    """results/ in git keeps records but not predictions or adapters: a fresh clone's runs are redone."""
    spec = RunSpec(model="glip-tiny", task="t", regime="linear-probe", shots=1, seed=3)
    folder = _finished_pair(tmp_path, spec, {**_record(spec), "files": [store.PREDICTIONS, store.ADAPTER]})
    assert store.finished_record(tmp_path, spec) is None  # the adapter it lists is missing
    (folder / store.ADAPTER).write_bytes(b"tensors")
    assert store.finished_record(tmp_path, spec) is not None
    store.predictions_path(folder).unlink()
    assert store.finished_record(tmp_path, spec) is None  # the predictions are missing


def test_records_without_a_file_list_need_their_predictions(tmp_path):
    spec = RunSpec(model="glip-tiny", task="t", regime="zero-shot")
    folder = _finished_pair(tmp_path, spec, _record(spec))  # no "files": written before the list existed
    assert store.finished_record(tmp_path, spec) is not None
    data = store.read_predictions(folder)
    store.predictions_path(folder).unlink()
    assert store.finished_record(tmp_path, spec) is None
    (folder / "predictions.json").write_text(json.dumps(data))  # the plain form read_predictions also takes
    assert store.finished_record(tmp_path, spec) is not None


def test_a_record_made_from_a_replaced_checkpoint_is_not_finished(tmp_path):
    from bench.util.io import sha256_file

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights v1")
    spec = RunSpec(model="glip-tiny", task="t", regime="zero-shot", checkpoint=str(ckpt))
    record = _record(spec)
    record["provenance"]["checkpoint_sha256"] = sha256_file(ckpt)
    _finished_pair(tmp_path, spec, record)
    assert store.finished_record(tmp_path, spec) is not None
    ckpt.write_bytes(b"weights v2, retrained")
    assert store.finished_record(tmp_path, spec) is None


def test_records_without_their_outputs_give_one_summary_line_not_one_per_run(tmp_path, caplog):
    """A fresh clone: every committed record lacks its predictions; the log says so once, with the count."""
    specs = [RunSpec(model="glip-tiny", task="t", regime="full-ft", shots=1, seed=s) for s in (3, 30, 300)]
    for spec in specs:
        store.write_record(store.run_dir(tmp_path, spec), _record(spec))
    done = _finished_pair(tmp_path, RunSpec(model="glip-tiny", task="t", regime="zero-shot"),
                          _record(RunSpec(model="glip-tiny", task="t", regime="zero-shot")))
    assert done.is_dir()
    why: list[str] = []
    with caplog.at_level("INFO", logger="glip_bench"):
        assert [store.finished_record(tmp_path, s, why) for s in specs] == [None, None, None]
    assert caplog.records == []  # nothing per run at INFO
    assert store.unfinished_summary(why, 4) == (
        "3 of 4 runs have a record but are not finished, so they run again (3 have a record without its "
        f"{store.PREDICTIONS}; a fresh clone keeps records, not predictions or adapters)")
    assert store.unfinished_summary([], 4) is None


def test_records_and_predictions_follow_the_umask(tmp_path):
    import os

    from bench.results import store

    old = os.umask(0o022)
    try:
        store.write_predictions(tmp_path / "run", [])
        assert (tmp_path / "run" / store.PREDICTIONS).stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        store.write_predictions(tmp_path / "run2", [])
        assert (tmp_path / "run2" / store.PREDICTIONS).stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_unknown_names_are_not_made_plural():
    from bench.util.errors import unknown_name

    msg = str(unknown_name("split of task synth-shapes", "tset", ["test", "train"]))
    assert "shapess" not in msg and msg.endswith("Valid: test, train") and "Did you mean 'test'?" in msg
