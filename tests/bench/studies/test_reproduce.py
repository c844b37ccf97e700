"""The reproduction check's judgement (bench.studies.reproduce): bit-identity only between equal kernel
fingerprints; elsewhere the runs, data and provenance no kernel changes must match exactly and the committed
models' metrics must stay within the tolerance. The quick demos it runs are CI's `.ci/demo-check`."""

from __future__ import annotations

import copy

import pytest

from bench.results import compare
from bench.studies import reproduce
from bench.testing.reports import make_record, write_records
from bench.util.errors import UserError


def _records(kernel_id: str | None, ckpt: str = "m/models/glip-synth-deep-abc.safetensors") -> list[dict]:
    out = []
    for i, task in enumerate(("synth-a", "synth-b")):
        r = make_record(task=task, value=40.0 + i, checkpoint=ckpt)
        r["provenance"]["kernels"] = None if kernel_id is None else {"id": kernel_id, "cpu": {"model_name": "x"}}
        out.append(r)
    return out


def test_bit_identity_is_expected_only_between_equal_recorded_fingerprints(tmp_path):
    write_records(tmp_path / "ref", _records("k1"))
    ref = compare.Reference.load(tmp_path / "ref")
    assert compare.same_kernels(_records("k1"), ref)
    assert not compare.same_kernels(_records("k2"), ref)
    assert not compare.same_kernels(_records(None), compare.Reference(tmp_path, _records(None)))  # unknown: never


def test_tolerance_allows_kernel_noise_and_flags_a_larger_move(tmp_path):
    write_records(tmp_path / "ref", _records("k1"))
    ref = compare.Reference.load(tmp_path / "ref")
    fresh = _records("k2")
    fresh[0]["metrics"]["values"]["AP"] = 40.0 + 0.2
    fresh[1]["metrics"]["values"]["AP"] = 41.0 + 0.3
    diffs = compare.compare(fresh, ref, tolerance=0.25)
    assert [d.status for d in diffs] == ["identical", "moved"]
    assert compare.largest_move(compare.compare(fresh, ref)) == pytest.approx(0.3)
    assert not compare.reproduced(compare.compare(fresh, ref))  # exact: both moved


def test_portable_provenance_and_the_run_set_must_match_exactly():
    committed = _records("k1")
    fresh = copy.deepcopy(committed)
    for r in fresh:
        r["provenance"]["kernels"] = {"id": "k2"}  # kernels may differ
        r["provenance"]["git_commit"] = "f" * 40  # so may the commit
    assert reproduce.portable_differences(fresh, committed) == []
    fresh[0]["provenance"]["ann_sha256"] = {"test": "other"}
    problems = reproduce.portable_differences(fresh[:1], committed)
    assert any("provenance.ann_sha256" in p for p in problems)
    assert any("committed but not made by this code" in p for p in problems)  # synth-b was not run


def test_missing_committed_models_are_refused_by_name(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(UserError, match="glip-synth-deep-"):
        reproduce.committed_models(tmp_path)
    for fusion in ("deep", "late"):
        (tmp_path / "models" / f"glip-synth-{fusion}-0123.safetensors").write_bytes(b"x")
    assert set(reproduce.committed_models(tmp_path)) == {"deep", "late"}
