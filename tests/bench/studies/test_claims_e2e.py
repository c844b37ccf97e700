"""`glip-bench claims --quick` end to end: two pretraining seeds per fusion, the grid, the side studies,
the supervised baseline and the table; a rerun reuses every finished piece."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.studies.claims.table import CLAIMS, forgetting_claims
from bench.studies.claims.verdict import VERDICTS

pytestmark = pytest.mark.slow


def test_quick_claims_study_end_to_end_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "claims"
    assert main(["claims", "--quick", "--out", str(out), "--workers", "1"]) == 0

    table = pd.read_csv(out / "claims.csv", keep_default_na=False)
    assert list(table.claim) == [c.id for c in (*CLAIMS, *forgetting_claims())]
    assert set(table.verdict) <= set(VERDICTS)
    measured = table[table.verdict != "not measured"]
    assert {"1a", "1b", "2a", "2b", "3", "4", "5a", "6a", "6c"} <= set(measured.claim)
    assert (measured.pretrain_seeds.astype(int) == 2).all()
    # the quick self-training budget trains no control student: that row says so instead of a number
    row_5b = table.set_index("claim").loc["5b"]
    assert row_5b.verdict == "not measured" and row_5b.note.startswith("not measured: empty design")
    # linear probing is not in the quick grid, so its forgetting row cannot be measured either
    assert table.set_index("claim").loc["6b"].verdict == "not measured"
    for r in measured.itertuples():
        assert float(r.ci_low) <= float(r.effect) <= float(r.ci_high)

    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/record.json"))]
    pretrained = [r for r in records if r["spec"]["checkpoint"] is not None]
    assert {r["provenance"]["seeds"]["pretrain"] for r in pretrained} == {0, 1}
    baseline = [r for r in records if r["spec"]["checkpoint"] is None]
    assert baseline and all(r["spec"]["shots"] is None and "pretrain" not in r["provenance"]["seeds"] for r in baseline)
    metas = [json.loads(p.read_text()) for p in sorted((out / "models").glob("*.json"))]
    assert sorted(m["pretrain_seed"] for m in metas) == [0, 0, 1, 1]

    assert (out / "claims.png").stat().st_size > 0
    text = (out / "CLAIMS.md").read_text()
    assert "Verdict rule:" in text and "| 1a |" in text
    assert (out / "COMMAND.txt").read_text().startswith("glip-bench claims --out")

    def stamps() -> dict[str, int]:
        done = [*(out / "runs").glob("*/record.json"), *(out / "models").glob("*.safetensors"),
                *(out / "studies").glob("*/cache/*.json"), *(out / "cache").glob("*.json")]
        return {str(p): p.stat().st_mtime_ns for p in done}

    before = stamps()
    assert main(["claims", "--quick", "--out", str(out), "--workers", "1"]) == 0
    assert stamps() == before  # nothing recomputed: runs, weights and side studies all reused
    n_runs = len(list((out / "runs").glob("*/record.json")))
    assert f"4 of 4 pretrained models and {n_runs} of {n_runs} runs were reused" in (out / "CLAIMS.md").read_text()
    assert pd.read_csv(out / "claims.csv", keep_default_na=False).equals(table)


def test_bad_pretraining_seeds_are_a_user_error(tmp_path: Path) -> None:
    assert main(["claims", "--quick", "--out", str(tmp_path), "--pretrain-seeds", "1", "--show-plan"]) == 2
    assert main(["claims", "--quick", "--out", str(tmp_path), "--pretrain-seeds", "1,1", "--show-plan"]) == 2
