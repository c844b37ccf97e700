import math

import pytest

from bench.results.records import RunSpec, validate_record
from bench.util.errors import UserError


def _record(spec: RunSpec, ap: float = 41.5) -> dict:
    return {
        "schema_version": 1,
        "spec": spec.to_dict(),
        "spec_hash": spec.hash,
        "task": {"name": spec.task, "version": 1, "groups": [], "metric": "coco_bbox", "split": "val",
                 "num_images": 3},
        "metrics": {"primary": "AP", "values": {"AP": ap, "AP50": math.nan}, "per_class": {}},
        "cost": dict.fromkeys(["total_params", "trainable_params", "stored_params", "train_seconds",
                               "images_seen", "infer_images_per_s", "peak_memory_mb", "device_hours"], 0)
        | {"device": "cpu"},
        "provenance": dict.fromkeys(["git_commit", "git_dirty", "packages", "torch", "cuda", "seeds",
                                     "ann_sha256", "checkpoint_sha256", "prompt_set", "chunk_size",
                                     "metric_backend"]),
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
        "wall_seconds": 1.0,
    }


def test_spec_hash_is_stable_and_sensitive():
    a = RunSpec(model="tiny", task="t", regime="full-ft", shots=5, seed=3, overrides={"b": 1, "a": 2})
    b = RunSpec(model="tiny", task="t", regime="full-ft", shots=5, seed=3, overrides={"a": 2, "b": 1})
    c = RunSpec(model="tiny", task="t", regime="full-ft", shots=5, seed=30)
    assert a.hash == b.hash
    assert a.hash != c.hash
    assert RunSpec.from_dict(a.to_dict()) == a


def test_bad_specs_say_what_to_change():
    with pytest.raises(UserError, match="zero-shot runs take no shots"):
        RunSpec(model="tiny", task="t", regime="zero-shot", shots=5)
    with pytest.raises(UserError, match="Did you mean 'full-ft'"):
        RunSpec(model="tiny", task="t", regime="full_ft", shots=5)
    with pytest.raises(UserError, match="unknown run-spec fields"):
        RunSpec.from_dict({"model": "x", "task": "t", "regime": "zero-shot", "shot": 1})


def test_validate_record_accepts_valid_and_rejects_broken():
    spec = RunSpec(model="tiny", task="t", regime="zero-shot")
    validate_record(_record(spec))
    bad = _record(spec)
    bad["spec_hash"] = "0" * 16
    with pytest.raises(ValueError, match="spec_hash"):
        validate_record(bad)
    with pytest.raises(ValueError, match="0-100"):
        validate_record(_record(spec, ap=140.0))
    missing = _record(spec)
    del missing["cost"]["device"]
    with pytest.raises(ValueError, match="cost lacks"):
        validate_record(missing)


def test_build_record_declares_the_schema_once():
    """build_record's object passes validate_record; the required fields are those without a default."""
    from bench.results.records import Cost, Metrics, TaskInfo, build_record

    spec = RunSpec(model="tiny", task="t", regime="zero-shot")
    base = _record(spec)
    cost = Cost(total_params=3, trainable_params=0, stored_params=0, train_seconds=0.0, images_seen=0,
                infer_images_per_s=1.0, peak_memory_mb=1.0, device="cpu", device_hours=0.0)
    record = build_record(spec, task=TaskInfo(**base["task"]), metrics=Metrics(primary="AP", values={"AP": 41.5}),
                          cost=cost, provenance=base["provenance"], started_at="a", finished_at="b", wall_seconds=1.0)
    assert list(record)[:3] == ["schema_version", "spec", "spec_hash"] and record["spec_hash"] == spec.hash
    assert record["cost"]["infer_seconds"] is None and record["task"]["ann_sha256"] is None  # optional, kept
    for section, key in (("task", "num_images"), ("cost", "device_hours"), ("provenance", "metric_backend")):
        broken = {**record, section: {k: v for k, v in record[section].items() if k != key}}
        with pytest.raises(ValueError, match=f"record {section} lacks \\['{key}'\\]"):
            validate_record(broken)
    with pytest.raises(ValueError, match="'wall_seconds' missing"):
        validate_record({**record, "wall_seconds": "1"})
    with pytest.raises(ValueError, match="AP=140"):
        build_record(spec, task=TaskInfo(**base["task"]), metrics=Metrics(primary="AP", values={"AP": 140.0}),
                     cost=cost, provenance=base["provenance"], started_at="a", finished_at="b", wall_seconds=1.0)
