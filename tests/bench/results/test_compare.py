"""Fresh records against committed ones (bench.results.compare): identical, moved, missing, and what differs."""

from __future__ import annotations

import copy

from bench.results import compare
from bench.testing.reports import make_record, write_records


def _pair(tmp_path, fresh_ckpt="fresh/models/m-abc.safetensors", ref_ckpt="results/ref/models/m-abc.safetensors"):
    ref = [make_record(task=t, value=40.0 + i, checkpoint=ref_ckpt) for i, t in enumerate(("synth-a", "synth-b"))]
    fresh = [make_record(task=t, value=40.0 + i, checkpoint=fresh_ckpt) for i, t in enumerate(("synth-a", "synth-b"))]
    write_records(tmp_path / "ref", ref)
    return fresh, compare.Reference.load(tmp_path / "ref")


def test_identical_records_match_across_results_folders(tmp_path):
    fresh, reference = _pair(tmp_path)
    assert fresh[0]["spec_hash"] != reference.records()[0]["spec_hash"]  # other folder, other hash
    diffs = compare.compare(fresh, reference)
    assert [d.status for d in diffs] == ["identical", "identical"]
    assert compare.reproduced(diffs)
    assert compare.headline(diffs, reference).startswith("Reproduction: all 2 records identical")


def test_a_moved_metric_and_the_differing_provenance_are_named(tmp_path):
    fresh, reference = _pair(tmp_path)
    fresh[1]["metrics"]["values"]["AP"] = 43.25
    fresh[1]["provenance"]["packages"] = {"transformers": "5.25.0"}
    fresh[1]["provenance"]["git_commit"] = "1" * 40
    diffs = compare.compare(fresh, reference)
    assert [d.status for d in diffs] == ["identical", "moved"]
    assert diffs[1].moved == {"AP": (41.0, 43.25)}
    assert diffs[1].provenance["packages.transformers"] == (None, "5.25.0")
    assert diffs[1].provenance["git_commit"] == ("0" * 40, "1" * 40)
    text = compare.report(diffs, reference)
    assert text.splitlines()[0] == f"Reproduction: NOT identical to {reference.folder}: 1 of 2 records moved (details below)."
    assert "AP 41.0000 -> 43.2500" in text
    assert "packages.transformers None -> 5.25.0" in text
    assert not compare.reproduced(diffs)


def test_nan_equals_nan_but_a_new_metric_is_a_move(tmp_path):
    fresh, reference = _pair(tmp_path)
    assert compare.compare(fresh, reference)[0].status == "identical"  # AP50 is NaN in both
    fresh[0]["metrics"]["values"]["AP75"] = 1.0
    assert compare.compare(fresh, reference)[0].moved == {"AP75": (None, 1.0)}


def test_a_run_without_committed_record_is_not_a_reproduction(tmp_path):
    fresh, reference = _pair(tmp_path, fresh_ckpt="fresh/models/m-OTHER.safetensors")
    diffs = compare.compare(fresh, reference)
    assert [d.status for d in diffs] == ["no reference", "no reference"]
    assert not compare.reproduced(diffs)
    assert "2 have no committed record" in compare.headline(diffs, reference)


def test_summary_gets_the_comparison_in_its_first_lines(tmp_path):
    fresh, reference = _pair(tmp_path)
    summary = {"markdown": "# Demo summary\n\n| a | b |\n"}
    out = compare.attach_reproduction(summary, fresh, reference)
    lines = out["markdown"].splitlines()
    assert lines[0] == "# Demo summary"
    assert lines[2].startswith("Reproduction: all 2 records identical")
    assert out["reproduction"]["identical"] is True and summary["markdown"].count("Reproduction") == 0


def test_cli_exit_codes_and_update(tmp_path, capsys):
    fresh, _ = _pair(tmp_path)
    write_records(tmp_path / "fresh", fresh)
    assert compare.main([str(tmp_path / "fresh"), str(tmp_path / "ref")]) == 0
    moved = copy.deepcopy(fresh)
    moved[0]["metrics"]["values"]["AP"] = 0.5
    write_records(tmp_path / "fresh", moved)
    assert compare.main([str(tmp_path / "fresh"), str(tmp_path / "ref")]) == 1
    assert "1 of 2 records moved" in capsys.readouterr().out
    assert compare.main([str(tmp_path / "fresh"), str(tmp_path / "nowhere")]) == 2
    assert "reference folder not found" in capsys.readouterr().err
    assert compare.main([str(tmp_path / "fresh"), str(tmp_path / "ref"), "--update"]) == 0
    assert compare.main([str(tmp_path / "fresh"), str(tmp_path / "ref")]) == 0
    assert len(list((tmp_path / "ref" / "runs").glob("*/record.json"))) == 2


def test_without_any_committed_records_the_report_is_one_line(tmp_path):
    fresh, _ = _pair(tmp_path)
    reference = compare.Reference.load(tmp_path / "nothing-here")
    text = compare.report(compare.compare(fresh, reference), reference)
    assert text.splitlines() == [f"Reproduction: no committed records in {reference.folder} to compare the 2 fresh records with."]


def test_demo_refuses_a_thread_count_below_one(tmp_path, capsys):
    from bench.cli import main as cli

    assert cli(["demo", "--quick", "--threads", "0", "--out", str(tmp_path / "demo")]) == 2
    assert "--threads must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
