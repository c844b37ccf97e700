"""A stage's stored result is reused only for the same inputs, and is written atomically with its input hash."""

import json

from bench.stage_cache import cached_stage


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
