"""A stage's stored result is reused only for the same inputs, and is written atomically with its input hash."""

import json

from bench.studies.stage_cache import cached_stage


def test_same_inputs_reuse_the_stored_result_and_changed_inputs_recompute(tmp_path):
    path = tmp_path / "cache" / "stage.json"
    calls = []

    def compute():
        calls.append(1)
        return {"ap": 40.0 + len(calls)}

    first, reused = cached_stage(path, {"teacher": "abc", "budget": 1}, compute, dict, dict)
    assert (first, reused, len(calls)) == ({"ap": 41.0}, False, 1)
    assert json.loads(path.read_text())["inputs"] == {"teacher": "abc", "budget": 1}
    again, reused = cached_stage(path, {"budget": 1, "teacher": "abc"}, compute, dict, dict)
    assert (again, reused, len(calls)) == ({"ap": 41.0}, True, 1)
    changed, reused = cached_stage(path, {"teacher": "def", "budget": 1}, compute, dict, dict)
    assert (changed, reused, len(calls)) == ({"ap": 42.0}, False, 2)
    path.write_text("{not json")
    broken, reused = cached_stage(path, {"teacher": "def", "budget": 1}, compute, dict, dict)
    assert (broken, reused, len(calls)) == ({"ap": 43.0}, False, 3)
    assert not list(path.parent.glob("*.tmp*"))


def test_demo_forgetting_stage_is_reused_until_a_run_is_redone(tmp_path, monkeypatch):
    """A second demo in the same folder does not redo the forgetting stage; a rerun fine-tuning run does."""
    import pandas as pd

    from bench.studies import demo, demo_extras
    from bench.testing.reports import make_record

    calls = []

    def fake_forgetting(records, data_root, out, batch):
        calls.append(len(records))
        return pd.DataFrame([{"fusion": "deep", "regime": "full-ft", "seed": 3, "forgetting (before - after)": 40.0}])

    monkeypatch.setattr(demo_extras, "forgetting", fake_forgetting)
    records = [make_record(task="synth-novel", regime="full-ft", shots=10, seed=3)]
    plan = demo.PLANS["quick"]
    first, reused = demo.forgetting_stage(records, tmp_path / "data", tmp_path, plan)
    assert not reused and calls == [1]
    again, reused = demo.forgetting_stage(records, tmp_path / "data", tmp_path, plan)
    assert reused and calls == [1] and again.equals(first)
    assert (tmp_path / "forgetting.csv").read_text().startswith("fusion,regime,seed")
    records[0]["started_at"] = "2026-02-02T00:00:00Z"  # the run was redone: new tensors
    _, reused = demo.forgetting_stage(records, tmp_path / "data", tmp_path, plan)
    assert not reused and calls == [1, 1]
