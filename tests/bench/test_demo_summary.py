"""The demo summary says when its wall times leave out work reused from an earlier demo."""

from bench.demo_extras import _reuse_lines


def test_a_fresh_demo_has_no_reuse_note():
    assert _reuse_lines({}) == []
    assert _reuse_lines({"runs": 0, "of_runs": 37, "models": 0, "of_models": 2}) == []


def test_a_resumed_demo_names_what_it_reused():
    (line, blank) = _reuse_lines({"runs": 37, "of_runs": 37, "models": 2, "of_models": 2})
    assert line.startswith("Resumed: 37 of 37 runs and 2 of 2 pretrained models") and blank == ""
