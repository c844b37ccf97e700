"""`glip-bench demo --quick` end to end: every stage runs and leaves complete, schema-valid records."""

import json

import pandas as pd
import pytest

from bench.cli import main as cli
from bench.results.records import validate_record

pytestmark = pytest.mark.slow  # about 1.5-3 minutes on 2 cores: the whole pipeline, reduced


def test_quick_demo_runs_every_stage(tmp_path):
    from bench.studies.demo import FUSIONS, PLANS, ZERO_SHOT_TASKS

    out = tmp_path / "demo"
    assert cli(["demo", "--quick", "--out", str(out)]) == 0
    plan = PLANS["quick"]
    records = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/record.json"))]
    for r in records:
        validate_record(r)
    expected_few_shot = sum(len(plan.regimes[f]) for f in FUSIONS) * len(plan.shots) * len(plan.seeds)
    assert len(records) == len(FUSIONS) * len(ZERO_SHOT_TASKS) + expected_few_shot
    seen = {(r["spec"]["overrides"]["fusion"], r["spec"]["regime"], r["spec"]["task"]) for r in records}
    for fusion in FUSIONS:
        assert {(fusion, "zero-shot", t) for t in ZERO_SHOT_TASKS} <= seen
        assert {(fusion, reg, "synth-novel") for reg in plan.regimes[fusion]} <= seen
    # the regimes store what they train: prompt tuning only the offset, full fine-tuning everything trainable
    import glip

    cfg = glip.get_preset("glip-synth")
    by_regime = {r["spec"]["regime"]: r for r in records}
    assert by_regime["prompt-tuning"]["cost"]["stored_params"] == cfg.prompt_offset_len * cfg.text_hidden
    for small in ("prompt-tuning", "linear-probe"):
        assert by_regime[small]["cost"]["stored_params"] < by_regime["full-ft"]["cost"]["stored_params"]
    assert by_regime["zero-shot"]["cost"]["trainable_params"] == 0
    # the grounding and LVIS-style tasks went through their own metrics (recall, chunked prompts)
    primaries = {r["spec"]["task"]: r["metrics"]["primary"] for r in records}
    assert primaries["synth-grounding"].startswith("R@1") and primaries["synth-lvis"] == "AP"
    lvis = next(r for r in records if r["spec"]["task"] == "synth-lvis")
    assert lvis["provenance"]["chunk_size"] and lvis["provenance"]["num_prompt_chunks"] > 1
    # reports, forgetting, self-training and the summary were written from these records
    for name in ("LEADERBOARD.md", "leaderboard.csv", "plots/ap-vs-shots.png", "ablation/ablation.md",
                 "ablation/ablation-forest.png", "forgetting.csv", "selftrain/selftrain.png", "summary.json",
                 "diagnosis.csv"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["timings"]) >= {"generate", "pretrain", "runs", "reports", "total"}
    assert f"from {len(records)} records" in (out / "LEADERBOARD.md").read_text()
    # the diagnosis covers every zero-shot COCO-metric task, with values in range
    diag = pd.read_csv(out / "diagnosis.csv")
    from bench.tasks.registry import get_task

    zero_shot_coco = {r["spec"]["task"] for r in records
                      if r["spec"]["regime"] == "zero-shot" and get_task(r["spec"]["task"]).metric == "coco_bbox"}
    assert {"synth-shapes", "synth-colours", "synth-novel"} <= zero_shot_coco
    assert zero_shot_coco <= set(diag.task)
    assert diag["class-agnostic AP"].between(0, 100).all() and diag["label accuracy"].dropna().between(0, 1).all()
    assert "What limits AP" in (out / "SUMMARY.md").read_text()
    # the summary opens with the comparison against the committed quick reference
    assert summary["reproduction"]["reference"] == "results/demo-quick"
    assert any(line.startswith("Reproduction: ") for line in (out / "SUMMARY.md").read_text().splitlines()[:3])
    # forgetting and self-training are stored under a hash of their inputs, for the next demo to reuse
    for stage in ("forgetting", "selftrain"):
        stored = json.loads((out / "cache" / f"{stage}.json").read_text())
        assert len(stored["inputs_sha256"]) == 64 and stored["result"]


def test_superseded_runs_are_pruned_and_named(tmp_path, caplog):
    from types import SimpleNamespace

    from bench.studies.demo import prune_superseded_runs

    for name in ("kept__run", "old__run"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "record.json").write_text("{}")
    with caplog.at_level("INFO"):
        stale = prune_superseded_runs(tmp_path, [SimpleNamespace(run_name="kept__run")])
    assert stale == ["old__run"]
    assert (tmp_path / "runs" / "kept__run" / "record.json").is_file() and not (tmp_path / "runs" / "old__run").exists()
    assert "old__run" in caplog.text
    assert prune_superseded_runs(tmp_path / "nothing-yet", []) == []
