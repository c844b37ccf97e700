"""The demo summary says when its wall times leave out work reused from an earlier demo."""

from bench.studies.demo_extras import _reuse_lines


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

    from bench.studies.demo_extras import demo_summary
    from bench.testing.reports import make_record

    records = [make_record(task="synth-colours", regime="zero-shot", value=60.0, overrides={"fusion": "deep"}),
               make_record(task="synth-novel", regime="full-ft", shots=10, seed=3, value=45.0,
                           overrides={"fusion": "deep"})]
    forgetting = pd.DataFrame([{"fusion": "deep", "regime": "full-ft", "seed": s, "forgetting (before - after)": v}
                               for s, v in ((3, 40.0), (30, 42.0))])
    selftrain = {"summary": pd.DataFrame([{"quantity": "student_ap", "mean": 49.218, "ci95_low": 47.2,
                                           "ci95_high": 50.79, "seeds": 3}])}
    md = demo_summary(records, forgetting, selftrain, SimpleNamespace(shots=(10,)), {"total": 1.0})["markdown"]
    assert "| fusion | regime | AP lost (mean) | std | seeds |\n|---|---|---|---|---|\n| deep | full-ft | 41.0 | 1.4 | 2 |" \
        in md
    assert "| quantity | mean | ci95_low | ci95_high | seeds |\n|---|---|---|---|---|\n| student_ap | 49.2 | 47.2 | 50.8 | 3 |" \
        in md
    assert "issue" not in md.lower()


def test_demo_worker_pool_leaves_no_leaked_semaphore(tmp_path):
    """Workers that drew a progress bar hold a multiprocessing lock; terminated workers leak it (a warning
    after nox reported success). The demo's pool lets them exit normally."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "pool.py"
    script.write_text(
        "from bench.studies.demo import pool_map\n"
        "def work(i):\n"
        "    from bench.studies.demo import _worker_setup\n"
        "    from bench.util.logs import progress\n"
        "    _worker_setup()\n"
        "    import torch\n"
        "    return int(sum(torch.ones(1) for _ in progress(range(3), desc=f'w{i}', total=3, position=i)))\n"
        "if __name__ == '__main__':\n"
        "    print(pool_map(work, [0, 1], 2))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    env.pop("GLIP_BENCH_NO_PROGRESS", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[3, 3]", done.stderr
    assert "w1" in done.stderr and "leaked semaphore" not in done.stderr


def test_the_full_demo_writes_its_world_where_tasks_and_run_look(tmp_path, monkeypatch):
    from pathlib import Path

    from bench.studies.demo import demo_data_root
    from bench.tasks.task import resolve_data_root

    monkeypatch.delenv("GLIP_BENCH_DATA", raising=False)
    assert demo_data_root(tmp_path / "demo", quick=False) == resolve_data_root() == Path("data")
    monkeypatch.setenv("GLIP_BENCH_DATA", str(tmp_path / "d"))
    assert demo_data_root(tmp_path / "demo", quick=False) == resolve_data_root() == tmp_path / "d"
    assert demo_data_root(tmp_path / "demo", quick=True) == tmp_path / "demo" / "data"  # the check stays apart
    assert demo_data_root(tmp_path / "demo", quick=False, data_root="x") == Path("x")


def test_summary_leads_with_results_and_targets_carry_source_and_verdict(tmp_path):
    """SUMMARY.md: the title, one reproduction line, then results; the moved records at the end; every target
    with its verdict and source."""
    from types import SimpleNamespace

    import pandas as pd

    from bench.results import compare
    from bench.studies.demo_extras import TARGETS_SOURCE, demo_summary
    from bench.testing.reports import make_record, write_records

    records = [make_record(task="synth-colours", regime="zero-shot", value=72.0, overrides={"fusion": "deep"}),
               make_record(task="synth-compositions", regime="zero-shot", value=40.0, overrides={"fusion": "deep"})]
    committed = [dict(r, metrics={**r["metrics"], "values": {**r["metrics"]["values"], "AP": 1.0}}) for r in records]
    write_records(tmp_path / "ref", committed)
    summary = demo_summary(records, pd.DataFrame(), {}, SimpleNamespace(shots=(10,)), {"total": 1.0})
    out = compare.attach_reproduction(summary, records, compare.Reference.load(tmp_path / "ref"))
    lines = out["markdown"].splitlines()
    assert lines[0].startswith("# ") and lines[2].startswith("Reproduction: NOT identical") and "end of this page" in lines[2]
    assert lines[4].startswith("Wall time") and "## Reproduction" in out["markdown"]
    assert out["markdown"].index("## Reproduction") > out["markdown"].index("## Targets")
    targets = out["targets"]
    assert targets["seen concepts (synth-colours, zero-shot, deep)"]["verdict"] == "met"
    assert targets["unseen compositions (synth-compositions, zero-shot, deep)"]["verdict"] == "missed"
    assert all(t["source"] == TARGETS_SOURCE for t in targets.values())
    assert "| 72.0 | >= 70 | met |" in out["markdown"]
