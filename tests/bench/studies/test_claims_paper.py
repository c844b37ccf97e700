"""`glip-bench claims --plan paper`: the released-checkpoint plan refuses before any compute, listing every
missing file with its source (rc 2); on fixture data with random official-layout checkpoints the same code
runs every arm, claim 3's supervised baseline (a tiny random RT-DETRv2) included, and writes a claims table
(plumbing, not findings: the weights are random)."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd

from bench.cli import main as cli_main
from bench.studies.claims.paper import CHECKPOINTS, PAPER, Arm, PaperClaim, PaperPlan, Weights, run_paper
from bench.testing.checkpoints import write_official_checkpoint
from bench.testing.hf import save_tiny
from bench.testing.world import make_world
from glip.config import get_preset


def test_refuses_listing_every_missing_file(tmp_path, capsys):
    assert cli_main(["claims", "--plan", "paper", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for w in PAPER.models.values():
        assert w.file in err and w.source in err
    assert "bert-base-uncased" in err and "task coco: split(s) val" in err
    for task in PAPER.task_sets["odinw13"]:
        assert f"task {task}:" in err
    assert not (tmp_path / "o").exists()  # nothing ran, nothing written


def test_paper_plan_names_the_checkpoints_the_claims_need():
    files = {w.name: w.file for w in PAPER.models.values()}
    assert files["GLIP-T (A)"] == "glip_a_tiny_o365.pth" and files["GLIP-T (B)"] == "glip_tiny_model_o365.pth"
    assert {c.id for c in PAPER.claims} == {"1a", "1b", "2a", "2b", "3"}
    assert len(PAPER.task_sets["odinw13"]) == 13


def test_runs_end_to_end_on_fixture_data(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    cfg = get_preset("glip-tiny")
    for i, name in enumerate(("a.pth", "b.pth", "t.pth")):
        write_official_checkpoint(cfg, data_root / CHECKPOINTS / name, seed=i)
    save_tiny("rt_detr_v2", data_root / CHECKPOINTS / "sup")  # the supervised baseline's initial weights
    # every claim of the paper plan, with the fixture world's tasks for COCO / ODinW-13, glip-tiny for GLIP-T
    # and a tiny random RT-DETRv2 for the baseline's COCO weights
    sets = {"coco": ("runner-shapes-a",), "odinw13": ("runner-shapes-a", "runner-shapes-b")}
    plan = PaperPlan(models={"A": Weights("GLIP-T (A)", "glip-tiny", "a.pth", "fixture"),
                             "B": Weights("GLIP-T (B)", "glip-tiny", "b.pth", "fixture"),
                             "T": Weights("GLIP-T", "glip-tiny", "t.pth", "fixture"),
                             "supervised": Weights("RT-DETRv2 (fixture)", "hf", "sup", "fixture")},
                     task_sets=sets, claims=PAPER.claims, seeds=(3, 30),
                     text_encoder=None, overrides={"max_iters": 1, "batch_size": 1, "eval_every": 0})
    table = run_paper(plan, data_root, tmp_path / "out")
    assert list(table.claim) == ["1a", "1b", "2a", "2b", "3"]
    on_disk = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert list(on_disk.claim) == ["1a", "1b", "2a", "2b", "3"]
    assert table.effect.notna().all() and (table.ci_low <= table.effect).all()
    assert set(table.verdict) <= {"holds", "contradicted", "inconclusive"}
    assert table.loc[table.claim == "1a", "paper"].item() == 44.9 - 42.9  # the paper's figure in the row
    assert (table.loc[table.claim == "2a", "finetune_seeds"] == 2).all()
    claim3 = table.loc[table.claim == "3"].iloc[0]
    assert claim3.finetune_seeds == 2 and "in place of the paper's DyHead-T" in claim3.note
    baseline = [r for r in map(_json, (tmp_path / "out").glob("runs/*/record.json"))
                if r["model"].get("family") == "closed-set"]
    assert sorted((r["spec"]["task"], r["spec"]["seed"]) for r in baseline) == [
        (t, s) for t in sets["odinw13"] for s in (3, 30)]
    for r in baseline:  # the whole train split, from the named initial weights, re-headed to the task's classes
        assert r["spec"]["shots"] is None and r["fewshot"]["train_source"] == "full"
        assert r["spec"]["model"] == f"hf:{data_root / CHECKPOINTS / 'sup'}"
        assert r["provenance"]["classifier"]["kept_from_checkpoint"] is False
    md = (tmp_path / "out" / "CLAIMS.md").read_text()
    assert "Verdict rule" in md and "| 2b |" in md and "| 3 |" in md and "RT-DETRv2 (fixture) = sup" in md
    # resumable: a second call reruns nothing and gives the same table
    again = run_paper(plan, data_root, tmp_path / "out")
    pd.testing.assert_frame_equal(table, again)


def _json(path):
    return json.loads(path.read_text())


def test_a_claim_whose_arm_never_ran_says_so(tmp_path):
    from bench.studies.claims.paper import build_paper_table

    claim = PaperClaim("x", "t", ((+1, Arm("A", "zero-shot", "s")),), ">", 0.0, (), "no number")
    plan = replace(PAPER, models={"A": PAPER.models["A"]}, task_sets={"s": ("coco",)}, claims=(claim,))
    row = build_paper_table(plan, [], tmp_path).iloc[0]
    assert row.verdict == "not measured" and row.note.startswith("not measured: no complete run set")
