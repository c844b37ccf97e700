"""The demo summary says when its wall times leave out work reused from an earlier demo."""

from bench.demo_extras import _reuse_lines


def test_a_fresh_demo_has_no_reuse_note():
    assert _reuse_lines({}) == []
    assert _reuse_lines({"runs": 0, "of_runs": 37, "models": 0, "of_models": 2}) == []


def test_a_resumed_demo_names_what_it_reused():
    (line, blank) = _reuse_lines({"runs": 37, "of_runs": 37, "models": 2, "of_models": 2})
    assert line.startswith("Resumed: 37 of 37 runs and 2 of 2 pretrained models") and blank == ""


def test_summary_tables_are_markdown_tables():
    """Forgetting and self-training render as Markdown tables (not pandas' plain text), with no issue number."""
    from types import SimpleNamespace

    import pandas as pd

    from bench.demo_extras import summarise
    from bench.reports.testing import make_record

    records = [make_record(task="synth-colours", regime="zero-shot", value=60.0, overrides={"fusion": "deep"}),
               make_record(task="synth-novel", regime="full-ft", shots=10, seed=3, value=45.0,
                           overrides={"fusion": "deep"})]
    forgetting = pd.DataFrame([{"fusion": "deep", "regime": "full-ft", "seed": s, "forgetting (before - after)": v}
                               for s, v in ((3, 40.0), (30, 42.0))])
    selftrain = {"summary": pd.DataFrame([{"quantity": "student_ap", "mean": 49.218, "ci95_low": 47.2,
                                           "ci95_high": 50.79, "seeds": 3}])}
    md = summarise(records, forgetting, selftrain, SimpleNamespace(shots=(10,)), {"total": 1.0})["markdown"]
    assert "| fusion | regime | AP lost (mean) | std | seeds |\n|---|---|---|---|---|\n| deep | full-ft | 41.0 | 1.4 | 2 |" \
        in md
    assert "| quantity | mean | ci95_low | ci95_high | seeds |\n|---|---|---|---|---|\n| student_ap | 49.2 | 47.2 | 50.8 | 3 |" \
        in md
    assert "issue" not in md.lower()
