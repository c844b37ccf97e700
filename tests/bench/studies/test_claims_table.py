"""The claims table from constructed records: each claim's effect is the designed difference, the verdict
follows from the interval, and a claim whose runs are missing says so in its row."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bench.studies.claims.figure import plot_claims
from bench.studies.claims.plan import PLANS
from bench.studies.claims.table import CLAIMS, Claim, build_table, paper_figure, table_markdown

PLAN = PLANS["full"]


def record(task: str, regime: str, fusion: str, value: float, *, pretrain: int | None, seed: int = 0,
           shots: int | None = 0) -> dict:
    return {"spec": {"task": task, "regime": regime, "shots": shots, "seed": seed, "overrides": {"fusion": fusion},
                     "checkpoint": None if pretrain is None else f"models/{fusion}-{pretrain}.safetensors"},
            "provenance": {"seeds": {"fewshot": seed, "train": seed,
                                     **({} if pretrain is None else {"pretrain": pretrain})}},
            "metrics": {"primary": "AP", "values": {"AP": value}}}


def study_records() -> list[dict]:
    """Deep beats late by 4 +- 1 AP zero-shot on seen classes (per pretraining seed), full-ft beats prompt
    tuning by 20 with late and by 2 with deep, 1-shot deep full-ft sits 10 above the baseline."""
    out = []
    for p in (0, 1, 2):
        out += [record("synth-colours", "zero-shot", "deep", 50.0 + p + 4 + (p - 1), pretrain=p),
                record("synth-colours", "zero-shot", "late", 50.0 + p, pretrain=p)]
        for s in (3, 30, 300):
            base = 40.0 + p + s / 300
            out += [record("synth-novel", "full-ft", "late", base, pretrain=p, seed=s, shots=10),
                    record("synth-novel", "prompt-tuning", "late", base - 20, pretrain=p, seed=s, shots=10),
                    record("synth-novel", "full-ft", "deep", base, pretrain=p, seed=s, shots=10),
                    record("synth-novel", "prompt-tuning", "deep", base - 2, pretrain=p, seed=s, shots=10),
                    record("synth-novel", "full-ft", "deep", 30.0 + p + s / 300, pretrain=p, seed=s, shots=1)]
    out += [record("synth-novel", "full-ft", "late", 20.0 + s / 300, pretrain=None, seed=s, shots=None)
            for s in (3, 30, 300)]
    return out


def test_claims_follow_the_designed_differences() -> None:
    table = build_table(study_records(), [], [], PLAN).set_index("claim")
    assert table.loc["1a", "effect"] == pytest.approx(4.0)
    assert table.loc["1a", "verdict"] == "holds"
    assert table.loc["1a", "ci_low"] >= 3.0 and table.loc["1a", "ci_high"] <= 5.0
    assert table.loc["2a", "effect"] == pytest.approx(18.0)  # (late gap 20) - (deep gap 2), exact in every cell
    assert table.loc["2a", "ci_low"] == pytest.approx(18.0) and table.loc["2a", "verdict"] == "holds"
    assert table.loc["2b", "effect"] == pytest.approx(-2.0) and table.loc["2b", "verdict"] == "holds"  # > -5
    assert table.loc["3", "effect"] == pytest.approx(11.0) and table.loc["3", "verdict"] == "holds"
    assert (table.loc["3", "pretrain_seeds"], table.loc["3", "finetune_seeds"]) == (3, 3)


def test_missing_runs_make_a_row_that_says_not_measured() -> None:
    table = build_table(study_records(), [], [], PLAN).set_index("claim")
    for claim in ("1b", "4", "5a", "5b", "6a"):
        assert table.loc[claim, "verdict"] == "not measured"
        assert table.loc[claim, "note"].startswith("not measured:")
        assert math.isnan(table.loc[claim, "effect"])


def test_a_contradicted_claim(tmp_path: Path) -> None:
    """Prompt tuning far below full-ft with deep fusion: claim 2b (within 5 AP) is contradicted."""
    records = [r for r in study_records() if not (r["spec"]["regime"] == "prompt-tuning"
                                                   and r["spec"]["overrides"]["fusion"] == "deep")]
    records += [record("synth-novel", "prompt-tuning", "deep", 10.0 + p + s / 1000, pretrain=p, seed=s, shots=10)
                for p in (0, 1, 2) for s in (3, 30, 300)]
    table = build_table(records, [], [], PLAN)
    row = table.set_index("claim").loc["2b"]
    assert row.verdict == "contradicted" and row.ci_high < -5.0
    text = table_markdown(table, PLAN, {"total": 1.0})
    assert "Verdict rule:" in text and "| 2b |" in text and "contradicted" in text
    assert plot_claims(table, tmp_path / "claims.png").stat().st_size > 0


def test_forgetting_and_selftrain_rows_feed_claims_5_and_6() -> None:
    forgetting = [{"pretrain_seed": p, "fusion": "deep", "regime": "full-ft", "shots": 10, "seed": s,
                   "forgetting (before - after)": 30.0 + p} for p in (0, 1, 2) for s in (3, 30, 300)]
    selftrain = [{"pretrain_seed": p, "seed": s, "student_minus_teacher": 10.0 + s, "student_minus_control": -1.0 - p}
                 for p in (0, 1, 2) for s in (0, 1, 2)]
    table = build_table([], forgetting, selftrain, PLAN).set_index("claim")
    assert table.loc["6c", "effect"] == pytest.approx(31.0) and table.loc["6c", "verdict"] == "holds"
    assert table.loc["6a", "verdict"] == "not measured"  # deep prompt tuning: no rows
    assert table.loc["5a", "effect"] == pytest.approx(11.0) and table.loc["5a", "verdict"] == "holds"
    assert table.loc["5b", "verdict"] == "contradicted"


def test_paper_figures_come_from_the_reference_table(tmp_path: Path) -> None:
    by_id = {c.id: c for c in CLAIMS}
    assert paper_figure(by_id["1a"]) == pytest.approx(44.9 - 42.9)
    assert paper_figure(by_id["3"]) == pytest.approx(59.9 - 60.8)
    assert math.isnan(paper_figure(by_id["4"]))
    ref = tmp_path / "paper.csv"
    pd.DataFrame([{"model": "M", "task": "t", "split": "s", "regime": "r", "shots": "", "metric": "AP", "value": v}
                  for v in ("1.0", "2.0")]).to_csv(ref, index=False)
    claim = Claim("x", "x", "x", ">", 0.0, ((+1, {"model": "M", "task": "t"}),), "x")
    with pytest.raises(ValueError, match="2 values"):
        paper_figure(claim, ref)


def test_rows_from_fewer_than_three_pretraining_seeds_say_so() -> None:
    records = [r for r in study_records() if r["provenance"]["seeds"].get("pretrain") != 2]
    table = build_table(records, [], [], PLAN)
    row = table.set_index("claim").loc["1a"]
    assert row.pretrain_seeds == 2 and "fewer than 3" in row.note
    assert "2 x 1 (too few seeds)" in table_markdown(table, PLAN, {"total": 1.0})
    full = build_table(study_records(), [], [], PLAN).set_index("claim")
    assert full.loc["1a", "note"] == ""
